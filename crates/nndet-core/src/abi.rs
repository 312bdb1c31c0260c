//! Helpers for the C ABI shells in lib.rs: turn raw (pointer, length) pairs into slices with checks,
//! and copy strings out to caller buffers. A null pointer with a non-zero length is `NullPointer`; a pointer
//! misaligned for its element type is `InvalidArgument`. Zero-length buffers may be null.

use crate::error::{NdError, NdResult, Status};

fn check_ptr<T>(p: *const T, len: usize, name: &str) -> NdResult<()> {
    if p.is_null() {
        if len == 0 {
            return Ok(());
        }
        return Err(NdError::new(Status::NullPointer, format!("{name} is a null pointer (expected {len} elements)")));
    }
    if (p as usize) % std::mem::align_of::<T>() != 0 {
        return Err(NdError::invalid(format!(
            "{name} is not aligned to {} bytes (address {:#x})",
            std::mem::align_of::<T>(),
            p as usize
        )));
    }
    Ok(())
}

/// # Safety
/// The caller promises `p` points to `len` readable elements that stay valid for the call.
pub unsafe fn slice<'a, T>(p: *const T, len: u64, name: &str) -> NdResult<&'a [T]> {
    let len = len as usize;
    check_ptr(p, len, name)?;
    if len == 0 {
        return Ok(&[]);
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// # Safety
/// The caller promises `p` points to `len` writable elements, not aliased, valid for the call.
pub unsafe fn slice_mut<'a, T>(p: *mut T, len: u64, name: &str) -> NdResult<&'a mut [T]> {
    let len = len as usize;
    check_ptr(p as *const T, len, name)?;
    if len == 0 {
        return Ok(&mut []);
    }
    Ok(std::slice::from_raw_parts_mut(p, len))
}

/// # Safety
/// `p` must be null or point to one writable T.
pub unsafe fn out<'a, T>(p: *mut T, name: &str) -> NdResult<&'a mut T> {
    check_ptr(p as *const T, 1, name)?;
    Ok(&mut *p)
}

/// Copy `s` into `buf` (capacity `cap` bytes) NUL-terminated and truncated; returns the full length of `s`.
///
/// # Safety
/// `buf` must be null or point to `cap` writable bytes.
pub unsafe fn copy_str(s: &str, buf: *mut u8, cap: u64) -> i32 {
    let bytes = s.as_bytes();
    if !buf.is_null() && cap > 0 {
        let n = bytes.len().min(cap as usize - 1);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, n);
        *buf.add(n) = 0;
    }
    bytes.len() as i32
}
