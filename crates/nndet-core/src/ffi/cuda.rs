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

/// Allocate `bytes` of device memory; the handle goes to `*handle`.
///
/// # Safety
/// `handle` must point to one u64.
#[no_mangle]
pub unsafe extern "C" fn nd_cuda_malloc(bytes: u64, handle: *mut u64) -> i32 {
    guard("nd_cuda_malloc", || {
        let o = out(handle, "handle")?;
        *o = cuda::malloc(bytes)?;
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn nd_cuda_free(handle: u64) -> i32 {
    guard("nd_cuda_free", || cuda::free(handle))
}

/// Copy `bytes` host bytes from `src` to device buffer `handle` at byte `offset`.
///
/// # Safety
/// `src` must hold `bytes` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn nd_cuda_upload(handle: u64, offset: u64, src: *const u8, bytes: u64) -> i32 {
    guard("nd_cuda_upload", || cuda::upload(handle, offset, slice(src, bytes, "src")?))
}

/// Copy `bytes` from device buffer `handle` at byte `offset` to host `dst`.
///
/// # Safety
/// `dst` must hold `bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn nd_cuda_download(handle: u64, offset: u64, dst: *mut u8, bytes: u64) -> i32 {
    guard("nd_cuda_download", || cuda::download(handle, offset, slice_mut(dst, bytes, "dst")?))
}

#[no_mangle]
pub extern "C" fn nd_cuda_synchronize() -> i32 {
    guard("nd_cuda_synchronize", cuda::synchronize)
}

/// y = a*x + y on `n` f32 of two device buffers (the GPU smoke kernel).
#[no_mangle]
pub extern "C" fn nd_cuda_saxpy(a: f32, x: u64, y: u64, n: u64) -> i32 {
    guard("nd_cuda_saxpy", || cuda::saxpy(a, x, y, n))
}

