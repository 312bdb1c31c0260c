//! C ABI shells of the base family: version, last error, build info, CPU features, thread pool,
//! Rust-owned host buffers, element conversion and statistics, and the test-only panic.

use crate::abi::{copy_str, out, slice, slice_mut};
use crate::error::{self, guard};
use crate::{cpu, cuda, memory, ops, pool, ABI_VERSION};

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
        ops::base::convert_f32(s, dtype, big_endian != 0, slope, inter, d)
    })
}

/// Statistics of `n` f32 values into `out` (7 f64: min, max, sum, sumsq, n_finite, n_nan, n_inf).
///
/// # Safety
/// `x` must hold `n` readable f32, `out_v` `out_n` writable f64.
#[no_mangle]
pub unsafe extern "C" fn nd_stats_f32(x: *const f32, n: u64, out_v: *mut f64, out_n: u64) -> i32 {
    guard("nd_stats_f32", || ops::base::stats_f32(slice(x, n, "x")?, slice_mut(out_v, out_n, "out")?))
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
    use crate::error;

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
