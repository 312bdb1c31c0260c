//! 64-byte aligned host buffers owned by Rust, for callers that want memory the JIT never moves
//! (`nd_host_alloc` / `nd_host_free`). A 64-byte header in front of the returned pointer records the size,
//! so freeing needs only the pointer. Memory is zeroed.

use crate::error::{NdError, NdResult, Status};
use std::alloc::{alloc_zeroed, dealloc, Layout};

pub const ALIGN: usize = 64;
const HEADER: usize = 64;
const MAGIC: u64 = 0x6e64_686f_7374_6275; // "ndhostbu"

fn layout(bytes: usize) -> NdResult<Layout> {
    let total = bytes
        .checked_add(HEADER)
        .ok_or_else(|| NdError::new(Status::OutOfMemory, format!("host buffer of {bytes} bytes is too large")))?;
    Layout::from_size_align(total, ALIGN)
        .map_err(|_| NdError::new(Status::OutOfMemory, format!("host buffer of {bytes} bytes is too large")))
}

/// Allocate `bytes` (may be 0) zeroed bytes aligned to 64; returns the user pointer.
pub fn host_alloc(bytes: usize) -> NdResult<*mut u8> {
    let lay = layout(bytes)?;
    // SAFETY: layout has non-zero size (HEADER > 0).
    let base = unsafe { alloc_zeroed(lay) };
    if base.is_null() {
        return Err(NdError::new(Status::OutOfMemory, format!("cannot allocate {bytes} bytes of host memory")));
    }
    // SAFETY: base is valid for HEADER bytes and 64-aligned.
    unsafe {
        (base as *mut u64).write(MAGIC);
        (base as *mut u64).add(1).write(bytes as u64);
        Ok(base.add(HEADER))
    }
}

/// The size recorded for a pointer returned by `host_alloc`, checking the header's magic.
///
/// # Safety
/// `ptr` must come from `host_alloc` and not be freed yet.
pub unsafe fn host_size(ptr: *mut u8) -> NdResult<usize> {
    if ptr.is_null() {
        return Err(NdError::new(Status::NullPointer, "host buffer pointer is null"));
    }
    let base = ptr.sub(HEADER);
    if (base as *const u64).read() != MAGIC {
        return Err(NdError::invalid("pointer was not allocated by nd_host_alloc (or was already freed)"));
    }
    Ok((base as *const u64).add(1).read() as usize)
}

/// Free a pointer returned by `host_alloc`. The magic is cleared first, so a double free is reported.
///
/// # Safety
/// `ptr` must come from `host_alloc`.
pub unsafe fn host_free(ptr: *mut u8) -> NdResult<()> {
    let bytes = host_size(ptr)?;
    let base = ptr.sub(HEADER);
    (base as *mut u64).write(0);
    dealloc(base, layout(bytes)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_and_sized() {
        for n in [0usize, 1, 63, 64, 1 << 20] {
            let p = host_alloc(n).unwrap();
            assert_eq!(p as usize % ALIGN, 0);
            unsafe {
                assert_eq!(host_size(p).unwrap(), n);
                assert!(std::slice::from_raw_parts(p, n).iter().all(|&b| b == 0));
                host_free(p).unwrap();
            }
        }
    }

    #[test]
    fn null_is_an_error() {
        assert_eq!(unsafe { host_free(std::ptr::null_mut()) }.unwrap_err().status, Status::NullPointer);
    }
}
