//! C ABI shells of the CUDA runtime basics (cuda/runtime.cu via src/cuda); NoCuda in the stub build.

use crate::abi::{copy_str, out, slice, slice_mut};
use crate::cuda;
use crate::error::{self, guard, NdError};

/// Runtime and driver versions (CUDA's integer encoding, e.g. 13000).
///
/// # Safety
/// Out-pointers must point to one i32 each.
#[no_mangle]
pub unsafe extern "C" fn nd_cuda_versions(runtime: *mut i32, driver: *mut i32) -> i32 {
    guard("nd_cuda_versions", || {
        let (r, d) = cuda::versions()?;
        *out(runtime, "runtime")? = r;
        *out(driver, "driver")? = d;
        Ok(())
    })
}

/// Number of CUDA devices; an error with the runtime's reason when none can be used.
///
/// # Safety
/// `n` must point to one i32.
#[no_mangle]
pub unsafe extern "C" fn nd_device_count(n: *mut i32) -> i32 {
    guard("nd_device_count", || {
        *out(n, "n")? = cuda::device_count()?;
        Ok(())
    })
}

/// Properties of device `dev`: name into `name` (cap bytes), and `nums` = [total_mem, major, minor, sm_count].
///
/// # Safety
/// `name` must hold `cap` bytes; `nums` 4 u64.
#[no_mangle]
pub unsafe extern "C" fn nd_device_props(dev: i32, name: *mut u8, cap: u64, nums: *mut u64, nums_n: u64) -> i32 {
    guard("nd_device_props", || {
        let n = slice_mut(nums, nums_n, "nums")?;
        if n.len() != 4 {
            return Err(NdError::new(error::Status::BufferSize, format!("nums needs 4 u64, got {}", n.len())));
        }
        let p = cuda::device_props(dev)?;
        copy_str(&p.name, name, cap);
        n.copy_from_slice(&[p.total_mem, p.major as u64, p.minor as u64, p.sm_count as u64]);
        Ok(())
    })
}

/// Select the CUDA device used by later calls on this thread.
#[no_mangle]
pub extern "C" fn nd_cuda_set_device(dev: i32) -> i32 {
    guard("nd_cuda_set_device", || cuda::set_device(dev))
}

/// Free and total bytes of the current device.
///
/// # Safety
/// Out-pointers must point to one u64 each.
#[no_mangle]
pub unsafe extern "C" fn nd_cuda_mem_info(free_b: *mut u64, total_b: *mut u64) -> i32 {
    guard("nd_cuda_mem_info", || {
        let (f, t) = cuda::mem_info()?;
        *out(free_b, "free")? = f;
        *out(total_b, "total")? = t;
        Ok(())
    })
}

/// The backend of a device call: 0 = the GPU (CUDA), 1 = the CPU emulator of the same kernels.
pub fn backend_of(code: i32) -> Result<cuda::Backend, NdError> {
    match code {
        0 => Ok(cuda::Backend::Cuda),
        1 => Ok(cuda::Backend::Emu),
        _ => Err(NdError::invalid(format!("device backend must be 0 (cuda) or 1 (emu), got {code}"))),
    }
}

/// Allocate `bytes` of device memory on `backend`; the address goes to `*handle`.
///
/// # Safety
/// `handle` must point to one u64.
#[no_mangle]
pub unsafe extern "C" fn nd_dev_malloc(backend: i32, bytes: u64, handle: *mut u64) -> i32 {
    guard("nd_dev_malloc", || {
        let o = out(handle, "handle")?;
        *o = cuda::malloc_on(backend_of(backend)?, bytes)?;
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn nd_dev_free(backend: i32, handle: u64) -> i32 {
    guard("nd_dev_free", || cuda::free_on(backend_of(backend)?, handle))
}

/// Copy `bytes` host bytes from `src` to device buffer `handle` at byte `offset`.
///
/// # Safety
/// `src` must hold `bytes` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn nd_dev_upload(backend: i32, handle: u64, offset: u64, src: *const u8, bytes: u64) -> i32 {
    guard("nd_dev_upload", || cuda::upload_on(backend_of(backend)?, handle, offset, slice(src, bytes, "src")?))
}

/// Copy `bytes` from device buffer `handle` at byte `offset` to host `dst` (waits for the device).
///
/// # Safety
/// `dst` must hold `bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn nd_dev_download(backend: i32, handle: u64, offset: u64, dst: *mut u8, bytes: u64) -> i32 {
    guard("nd_dev_download", || cuda::download_on(backend_of(backend)?, handle, offset, slice_mut(dst, bytes, "dst")?))
}

/// Fill `bytes` at device address `addr` (inside a live allocation) with the byte `value`.
#[no_mangle]
pub extern "C" fn nd_dev_memset(backend: i32, addr: u64, value: u32, bytes: u64) -> i32 {
    guard("nd_dev_memset", || cuda::memset_on(backend_of(backend)?, addr, value as u8, bytes))
}

/// Wait for the device; reports the first launch error, if any.
#[no_mangle]
pub extern "C" fn nd_dev_sync(backend: i32) -> i32 {
    guard("nd_dev_sync", || cuda::sync(backend_of(backend)?))
}

/// y = a*x + y on `n` f32 at two device addresses (the smoke kernel).
#[no_mangle]
pub extern "C" fn nd_dev_saxpy(backend: i32, a: f32, x: u64, y: u64, n: u64) -> i32 {
    guard("nd_dev_saxpy", || cuda::saxpy_on(backend_of(backend)?, a, x, y, n))
}

/// A new stream on `backend` (its handle to `*out`).
///
/// # Safety
/// `out` must point to one u64.
#[no_mangle]
pub unsafe extern "C" fn nd_dev_stream_create(backend: i32, out_stream: *mut u64) -> i32 {
    guard("nd_dev_stream_create", || {
        let o = out(out_stream, "stream")?;
        *o = cuda::stream_create(backend_of(backend)?)?;
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn nd_dev_stream_destroy(backend: i32, stream: u64) -> i32 {
    guard("nd_dev_stream_destroy", || cuda::stream_destroy(backend_of(backend)?, stream))
}

/// Wait for the work queued on `stream` (0: the whole device); reports the first kernel error, if any.
#[no_mangle]
pub extern "C" fn nd_dev_stream_sync(backend: i32, stream: u64) -> i32 {
    guard("nd_dev_stream_sync", || cuda::stream_sync(backend_of(backend)?, stream))
}
