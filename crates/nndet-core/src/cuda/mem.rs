//! Device memory and streams of both backends: allocations registered in one table with their size and
//! backend (so every pointer argument can be checked with `span`), copies, fills, synchronisation, streams,
//! and `DevBuf`, an owned allocation for tests and staging.

use super::{call, Backend, Runtime, SmokeKernels};
use crate::error::{NdError, NdResult, Status};
use std::collections::BTreeMap;
use std::os::raw::{c_int, c_void};
use std::sync::Mutex;

/// Live device allocations of both backends: address -> (size in bytes, backend).
static ALLOCS: Mutex<BTreeMap<u64, (u64, Backend)>> = Mutex::new(BTreeMap::new());

/// Check that [addr, addr+bytes) lies inside one live allocation of backend `b` (an address may point into
/// the middle of one, e.g. an arena); `what` names the argument in the error.
pub fn span(b: Backend, addr: u64, bytes: u64, what: &str) -> NdResult<()> {
    let table = ALLOCS.lock().unwrap_or_else(|p| p.into_inner());
    let Some((&start, &(size, owner))) = table.range(..=addr).next_back() else {
        return Err(NdError::invalid(format!("{what}: address {addr:#x} is not in a live nndet device allocation")));
    };
    let end = addr.checked_add(bytes).ok_or_else(|| NdError::invalid(format!("{what}: address + bytes overflows")))?;
    if addr >= start + size.max(1) {
        return Err(NdError::invalid(format!("{what}: address {addr:#x} is not in a live nndet device allocation")));
    }
    if owner != b {
        return Err(NdError::invalid(format!("{what}: a {} buffer passed to the {} backend", owner.name(), b.name())));
    }
    if end > start + size {
        return Err(NdError::new(
            Status::BufferSize,
            format!("{what}: {bytes} bytes at offset {} exceed the device buffer of {size} bytes", addr - start),
        ));
    }
    Ok(())
}

/// Check that `handle` is the start of a live allocation and [offset, +bytes) lies inside it.
fn check_range(b: Backend, handle: u64, offset: u64, bytes: u64) -> NdResult<()> {
    let size = match ALLOCS.lock().unwrap_or_else(|p| p.into_inner()).get(&handle) {
        Some(&(size, owner)) if owner == b => size,
        _ => return Err(NdError::invalid(format!("device handle {handle:#x} is not a live nndet allocation"))),
    };
    let end = offset.checked_add(bytes).ok_or_else(|| NdError::invalid("offset + bytes overflows"))?;
    if end > size {
        return Err(NdError::new(
            Status::BufferSize,
            format!("copy of {bytes} bytes at offset {offset} exceeds the device buffer of {size} bytes"),
        ));
    }
    Ok(())
}

pub fn malloc_on(b: Backend, bytes: u64) -> NdResult<u64> {
    let k = Runtime::of(b)?;
    let mut p: *mut c_void = std::ptr::null_mut();
    call(b, unsafe { (k.malloc)(&mut p, bytes.max(1)) }, "malloc")?;
    let h = p as u64;
    ALLOCS.lock().unwrap_or_else(|p| p.into_inner()).insert(h, (bytes, b));
    Ok(h)
}

pub fn free_on(b: Backend, handle: u64) -> NdResult<()> {
    let k = Runtime::of(b)?;
    let known = {
        let mut t = ALLOCS.lock().unwrap_or_else(|p| p.into_inner());
        match t.get(&handle) {
            Some(&(_, owner)) if owner == b => t.remove(&handle).is_some(),
            _ => false,
        }
    };
    if !known {
        return Err(NdError::invalid(format!("device handle {handle:#x} is not a live allocation (double free?)")));
    }
    call(b, unsafe { (k.free)(handle as *mut c_void) }, "free")
}

pub fn upload_on(b: Backend, handle: u64, offset: u64, src: &[u8]) -> NdResult<()> {
    let k = Runtime::of(b)?;
    check_range(b, handle, offset, src.len() as u64)?;
    let dst = (handle + offset) as *mut c_void;
    call(b, unsafe { (k.memcpy_h2d)(dst, src.as_ptr() as *const c_void, src.len() as u64) }, "memcpy H2D")
}

pub fn download_on(b: Backend, handle: u64, offset: u64, dst: &mut [u8]) -> NdResult<()> {
    let k = Runtime::of(b)?;
    check_range(b, handle, offset, dst.len() as u64)?;
    let src = (handle + offset) as *const c_void;
    call(b, unsafe { (k.memcpy_d2h)(dst.as_mut_ptr() as *mut c_void, src, dst.len() as u64) }, "memcpy D2H")
}

/// Fill [addr, +bytes) (inside a live allocation) with the byte `value`; synchronous, as the copies (work
/// queued on a stream uses the kernels' fill instead).
pub fn memset_on(b: Backend, addr: u64, value: u8, bytes: u64) -> NdResult<()> {
    let k = Runtime::of(b)?;
    span(b, addr, bytes, "memset")?;
    call(b, unsafe { (k.memset)(addr as *mut c_void, value as c_int, bytes) }, "memset")
}

/// Copy between two ranges of live device allocations of `b`.
pub fn copy_on(b: Backend, dst: u64, src: u64, bytes: u64) -> NdResult<()> {
    let k = Runtime::of(b)?;
    span(b, dst, bytes, "copy dst")?;
    span(b, src, bytes, "copy src")?;
    call(b, unsafe { (k.memcpy_d2d)(dst as *mut c_void, src as *const c_void, bytes) }, "memcpy D2D")
}

/// Wait for the device; reports the first launch error, if any.
pub fn sync(b: Backend) -> NdResult<()> {
    let k = Runtime::of(b)?;
    call(b, unsafe { (k.synchronize)() }, "synchronize")
}

/// Live streams: handle -> backend (so a destroyed or foreign stream is refused, not passed to the driver).
static STREAMS: Mutex<BTreeMap<u64, Backend>> = Mutex::new(BTreeMap::new());

/// A new stream on `b` (kernels on one stream run in order; the null stream 0 is the default stream).
pub fn stream_create(b: Backend) -> NdResult<u64> {
    let k = Runtime::of(b)?;
    let mut s: *mut c_void = std::ptr::null_mut();
    call(b, unsafe { (k.stream_create)(&mut s) }, "stream create")?;
    STREAMS.lock().unwrap_or_else(|p| p.into_inner()).insert(s as u64, b);
    Ok(s as u64)
}

/// Check a stream argument: 0 (the default stream) or a live stream of `b`.
pub fn stream_ok(b: Backend, s: u64) -> NdResult<*mut c_void> {
    if s != 0 && STREAMS.lock().unwrap_or_else(|p| p.into_inner()).get(&s) != Some(&b) {
        return Err(NdError::invalid(format!("stream {s:#x} is not a live {} stream", b.name())));
    }
    Ok(s as *mut c_void)
}

pub fn stream_destroy(b: Backend, s: u64) -> NdResult<()> {
    let k = Runtime::of(b)?;
    if s == 0 || STREAMS.lock().unwrap_or_else(|p| p.into_inner()).remove(&s).is_none() {
        return Err(NdError::invalid(format!("stream {s:#x} is not a live stream (destroyed twice?)")));
    }
    call(b, unsafe { (k.stream_destroy)(s as *mut c_void) }, "stream destroy")
}

/// Wait for the work queued on stream `s` (0: the whole device).
pub fn stream_sync(b: Backend, s: u64) -> NdResult<()> {
    let k = Runtime::of(b)?;
    if s == 0 {
        return sync(b);
    }
    let p = stream_ok(b, s)?;
    call(b, unsafe { (k.stream_sync)(p) }, "stream synchronize")
}

/// y = a*x + y over n f32 elements of two device buffers (the smoke kernel).
pub fn saxpy_on(b: Backend, a: f32, x: u64, y: u64, n: u64) -> NdResult<()> {
    let k = SmokeKernels::of(b)?;
    span(b, x, n.saturating_mul(4), "x")?;
    span(b, y, n.saturating_mul(4), "y")?;
    call(b, unsafe { (k.saxpy)(a, x as *const f32, y as *mut f32, n, std::ptr::null_mut()) }, "saxpy")
}


/// An owned device allocation (freed on drop), for tests and host-side staging.
pub struct DevBuf {
    b: Backend,
    ptr: u64,
    bytes: usize,
}

impl DevBuf {
    pub fn zeroed(b: Backend, bytes: usize) -> NdResult<DevBuf> {
        let ptr = malloc_on(b, bytes as u64)?;
        let d = DevBuf { b, ptr, bytes };
        memset_on(b, ptr, 0, bytes as u64)?;
        Ok(d)
    }

    /// A buffer holding a copy of `s` (plain numeric element types).
    pub fn from_slice<T: Copy>(b: Backend, s: &[T]) -> NdResult<DevBuf> {
        let bytes = std::mem::size_of_val(s);
        let ptr = malloc_on(b, bytes as u64)?;
        let d = DevBuf { b, ptr, bytes };
        // SAFETY: viewing initialised plain data as bytes.
        upload_on(b, ptr, 0, unsafe { std::slice::from_raw_parts(s.as_ptr() as *const u8, bytes) })?;
        Ok(d)
    }

    /// The contents as elements of T (plain numeric types), after waiting for the device.
    pub fn to_vec<T: Copy>(&self) -> NdResult<Vec<T>> {
        sync(self.b)?;
        let n = self.bytes / std::mem::size_of::<T>();
        let mut v: Vec<T> = Vec::with_capacity(n);
        // SAFETY: the bytes are fully written by the download before set_len; T is plain data.
        unsafe {
            download_on(self.b, self.ptr, 0, std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, n * std::mem::size_of::<T>()))?;
            v.set_len(n);
        }
        Ok(v)
    }

    pub fn ptr(&self) -> u64 {
        self.ptr
    }
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    pub fn backend(&self) -> Backend {
        self.b
    }
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        let _ = free_on(self.b, self.ptr);
    }
}
