//! nndet-core: the numeric core of nndet, a plain C ABI over CPU kernels (std + std::arch) and, when built
//! with nvcc, CUDA kernels. Loaded by `src/native/lib.ts` through bun:ffi.
//!
//! ABI conventions (design notes §3):
//! - every `nd_*` returns an `i32` status (error.rs `Status`; 0 = ok), except `nd_abi_version`,
//!   `nd_last_error` and `nd_has_cuda`, which return their value directly;
//! - outputs go through out-pointers; buffers are passed as (pointer, element count) and checked in abi.rs;
//! - each body runs inside `guard()`, so errors and panics become a status plus a message that
//!   `nd_last_error` copies out; nothing unwinds across the boundary.
//!
//! Bump `ABI_VERSION` whenever a signature changes; `src/native/lib.ts` refuses a mismatched library.

pub mod abi;
pub mod cpu;
pub mod cuda;
pub mod dtype;
pub mod error;
pub mod memory;
pub mod ops;
pub mod pool;

use abi::{copy_str, out, slice, slice_mut};
use error::{guard, NdError};

pub const ABI_VERSION: i32 = 1;

#[no_mangle]
pub extern "C" fn nd_abi_version() -> i32 {
    ABI_VERSION
}

/// Copy this thread's last error message into `buf` (NUL-terminated, truncated to `cap`); returns its length.
///
/// # Safety
/// `buf` must be null or point to `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn nd_last_error(buf: *mut u8, cap: u64) -> i32 {
    copy_str(&error::last_error(), buf, cap)
}

/// 1 when this library was built with the CUDA backend, else 0.
#[no_mangle]
pub extern "C" fn nd_has_cuda() -> i32 {
    cuda::HAS_CUDA as i32
}

/// JSON with the crate version and build facts, copied into `buf`; `*len` receives the full length.
///
/// # Safety
/// `buf` must point to `cap` writable bytes, `len` to one i32.
#[no_mangle]
pub unsafe extern "C" fn nd_build_info(buf: *mut u8, cap: u64, len: *mut i32) -> i32 {
    guard("nd_build_info", || {
        let info = format!(
            "{{\"version\":\"{}\",\"abi\":{},\"cuda\":{},\"target\":\"{}-{}\",\"debug\":{}}}",
            env!("CARGO_PKG_VERSION"),
            ABI_VERSION,
            cuda::HAS_CUDA,
            std::env::consts::ARCH,
            std::env::consts::OS,
            cfg!(debug_assertions)
        );
        *out(len, "len")? = copy_str(&info, buf, cap);
        Ok(())
    })
}

/// CPU feature bitmask (cpu/features.rs FEAT_*) and the kernel level in use (0 scalar, 1 avx2, 2 avx512).
///
/// # Safety
/// Out-pointers must point to one value each.
#[no_mangle]
pub unsafe extern "C" fn nd_cpu_features(features: *mut u32, level: *mut i32) -> i32 {
    guard("nd_cpu_features", || {
        *out(features, "features")? = cpu::features::detect();
        *out(level, "level")? = cpu::features::level() as i32;
        Ok(())
    })
}

/// Threads in the kernel pool (det_num_threads, else all cores). Starts the pool.
///
/// # Safety
/// `n` must point to one i32.
#[no_mangle]
pub unsafe extern "C" fn nd_num_threads(n: *mut i32) -> i32 {
    guard("nd_num_threads", || {
        *out(n, "n")? = pool::pool().threads() as i32;
        Ok(())
    })
}

/// Allocate `bytes` zeroed, 64-byte aligned host bytes owned by Rust; the address goes to `*ptr`.
///
/// # Safety
/// `ptr` must point to one u64.
#[no_mangle]
pub unsafe extern "C" fn nd_host_alloc(bytes: u64, ptr: *mut u64) -> i32 {
    guard("nd_host_alloc", || {
        let o = out(ptr, "ptr")?;
        *o = memory::host_alloc(bytes as usize)? as u64;
        Ok(())
    })
}

/// Free memory from `nd_host_alloc` (a foreign or already freed address is refused).
///
/// # Safety
/// `ptr` must be an address returned by `nd_host_alloc`.
#[no_mangle]
pub unsafe extern "C" fn nd_host_free(ptr: u64) -> i32 {
    guard("nd_host_free", || memory::host_free(ptr as *mut u8))
}

/// Convert `n` elements of raw `dtype` bytes (`src_bytes` long) to f32 with `x*slope + inter`.
///
/// # Safety
/// `src` must hold `src_bytes` readable bytes and `dst` `n` writable f32.
#[no_mangle]
pub unsafe extern "C" fn nd_convert_f32(
    src: *const u8,
    src_bytes: u64,
    dtype: i32,
    big_endian: i32,
    slope: f64,
    inter: f64,
    dst: *mut f32,
    n: u64,
) -> i32 {
    guard("nd_convert_f32", || {
        let s = slice(src, src_bytes, "src")?;
        let d = slice_mut(dst, n, "dst")?;
        ops::convert_f32(s, dtype, big_endian != 0, slope, inter, d)
    })
}

/// Statistics of `n` f32 values into `out` (7 f64: min, max, sum, sumsq, n_finite, n_nan, n_inf).
///
/// # Safety
/// `x` must hold `n` readable f32, `out_v` `out_n` writable f64.
#[no_mangle]
pub unsafe extern "C" fn nd_stats_f32(x: *const f32, n: u64, out_v: *mut f64, out_n: u64) -> i32 {
    guard("nd_stats_f32", || ops::stats_f32(slice(x, n, "x")?, slice_mut(out_v, out_n, "out")?))
}

// ---- CUDA runtime basics (cuda/runtime.cu); NoCuda in the stub build ----

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

/// Test-only: panics inside `guard()`, so the boundary's panic handling can be checked from TS.
#[no_mangle]
pub extern "C" fn nd_debug_panic(code: i32) -> i32 {
    guard("nd_debug_panic", || {
        if code >= 0 {
            panic!("deliberate panic {code} (nd_debug_panic)");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_check_pointers_and_sizes() {
        unsafe {
            let mut dst = [0f32; 4];
            let src = [1u8, 2, 3, 4];
            assert_eq!(nd_convert_f32(src.as_ptr(), 4, 0, 0, 1.0, 0.0, dst.as_mut_ptr(), 4), 0);
            assert_eq!(dst, [1.0, 2.0, 3.0, 4.0]);
            // wrong size: 4 bytes of i16 are 2 elements, not 4
            assert_eq!(nd_convert_f32(src.as_ptr(), 4, 2, 0, 1.0, 0.0, dst.as_mut_ptr(), 4), 3);
            assert!(error::last_error().contains("need 8 bytes"));
            // null destination with a non-zero length
            assert_eq!(nd_convert_f32(src.as_ptr(), 4, 0, 0, 1.0, 0.0, std::ptr::null_mut(), 4), 2);
            assert!(error::last_error().contains("dst is a null pointer"));
            assert_eq!(nd_debug_panic(3), 7);
            assert!(error::last_error().contains("deliberate panic 3"));
            let mut buf = [0u8; 8];
            let n = nd_last_error(buf.as_mut_ptr(), 8);
            assert!(n > 8 && buf[7] == 0);
        }
    }
}
