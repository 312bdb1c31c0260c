//! The CUDA backend as the rest of the core sees it: safe functions over the `ndk_*` launchers of
//! `cuda/*.cu`. Built with nvcc (cfg `nd_cuda`) they call the GPU; in the stub build every function returns
//! `Status::NoCuda`. Device buffers are handles (device addresses as u64) registered in a table, so a copy out
//! of bounds, a free of an unknown handle or a double free is an error, not a crash.

#![cfg_attr(not(nd_cuda), allow(unused_variables))]

use crate::error::{NdError, NdResult, Status};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Properties of one CUDA device.
#[derive(Clone, Debug)]
pub struct DeviceProps {
    pub name: String,
    pub total_mem: u64,
    pub major: i32,
    pub minor: i32,
    pub sm_count: i32,
}

pub const HAS_CUDA: bool = cfg!(nd_cuda);

#[cfg(nd_cuda)]
mod ffi {
    use std::os::raw::{c_char, c_int, c_void};
    extern "C" {
        pub fn ndk_error_string(code: c_int) -> *const c_char;
        pub fn ndk_runtime_version(out: *mut c_int) -> c_int;
        pub fn ndk_driver_version(out: *mut c_int) -> c_int;
        pub fn ndk_device_count(out: *mut c_int) -> c_int;
        pub fn ndk_device_props(
            dev: c_int,
            name: *mut c_char,
            total_mem: *mut u64,
            major: *mut c_int,
            minor: *mut c_int,
            sm_count: *mut c_int,
        ) -> c_int;
        pub fn ndk_mem_info(free_b: *mut u64, total_b: *mut u64) -> c_int;
        pub fn ndk_set_device(dev: c_int) -> c_int;
        pub fn ndk_malloc(out: *mut *mut c_void, bytes: u64) -> c_int;
        pub fn ndk_free(p: *mut c_void) -> c_int;
        pub fn ndk_memcpy_h2d(dst: *mut c_void, src: *const c_void, bytes: u64) -> c_int;
        pub fn ndk_memcpy_d2h(dst: *mut c_void, src: *const c_void, bytes: u64) -> c_int;
        pub fn ndk_synchronize() -> c_int;
        pub fn ndk_saxpy(a: f32, x: *const f32, y: *mut f32, n: u64) -> c_int;
    }
}

/// Turn a launcher's return code into a Result whose message names the operation.
#[cfg(nd_cuda)]
fn cu(code: i32, what: &str) -> NdResult<()> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: cudaGetErrorString returns a static NUL-terminated string for any code.
    let msg = unsafe { std::ffi::CStr::from_ptr(ffi::ndk_error_string(code)) }.to_string_lossy().into_owned();
    Err(NdError::new(Status::Cuda, format!("{what}: {msg} (cuda error {code})")))
}

#[cfg(not(nd_cuda))]
fn no_cuda<T>() -> NdResult<T> {
    Err(NdError::new(Status::NoCuda, "this nndet library was built without CUDA (no nvcc at build time, or NDET_CUDA=0)"))
}

/// Run a body only in the CUDA build; the stub build answers NoCuda.
macro_rules! with_cuda {
    ($body:block) => {{
        #[cfg(nd_cuda)]
        {
            $body
        }
        #[cfg(not(nd_cuda))]
        {
            no_cuda()
        }
    }};
}

/// (runtime version, driver version) as CUDA encodes them (e.g. 13000).
pub fn versions() -> NdResult<(i32, i32)> {
    with_cuda!({
        let (mut r, mut d) = (0, 0);
        cu(unsafe { ffi::ndk_runtime_version(&mut r) }, "cudaRuntimeGetVersion")?;
        cu(unsafe { ffi::ndk_driver_version(&mut d) }, "cudaDriverGetVersion")?;
        Ok((r, d))
    })
}

pub fn device_count() -> NdResult<i32> {
    with_cuda!({
        let mut n = 0;
        cu(unsafe { ffi::ndk_device_count(&mut n) }, "cudaGetDeviceCount")?;
        Ok(n)
    })
}

pub fn device_props(dev: i32) -> NdResult<DeviceProps> {
    with_cuda!({
        let n = device_count()?;
        if dev < 0 || dev >= n {
            return Err(NdError::invalid(format!("device {dev} does not exist ({n} CUDA devices)")));
        }
        let mut name = [0 as std::os::raw::c_char; 256];
        let (mut mem, mut major, mut minor, mut sms) = (0u64, 0, 0, 0);
        cu(
            unsafe { ffi::ndk_device_props(dev, name.as_mut_ptr(), &mut mem, &mut major, &mut minor, &mut sms) },
            "cudaGetDeviceProperties",
        )?;
        let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned();
        Ok(DeviceProps { name, total_mem: mem, major, minor, sm_count: sms })
    })
}

/// (free, total) bytes on the current device.
pub fn mem_info() -> NdResult<(u64, u64)> {
    with_cuda!({
        let (mut f, mut t) = (0u64, 0u64);
        cu(unsafe { ffi::ndk_mem_info(&mut f, &mut t) }, "cudaMemGetInfo")?;
        Ok((f, t))
    })
}

pub fn set_device(dev: i32) -> NdResult<()> {
    with_cuda!({ cu(unsafe { ffi::ndk_set_device(dev) }, "cudaSetDevice") })
}

/// Live device allocations: handle -> size in bytes.
#[cfg_attr(not(nd_cuda), allow(dead_code))]
static ALLOCS: Mutex<BTreeMap<u64, u64>> = Mutex::new(BTreeMap::new());

/// Check that [handle+offset, +bytes) lies inside one live allocation made by `malloc`.
#[cfg_attr(not(nd_cuda), allow(dead_code))]
fn check_range(handle: u64, offset: u64, bytes: u64) -> NdResult<()> {
    let table = ALLOCS.lock().unwrap_or_else(|p| p.into_inner());
    let size = *table
        .get(&handle)
        .ok_or_else(|| NdError::invalid(format!("device handle {handle:#x} is not a live nndet allocation")))?;
    let end = offset.checked_add(bytes).ok_or_else(|| NdError::invalid("offset + bytes overflows"))?;
    if end > size {
        return Err(NdError::new(
            Status::BufferSize,
            format!("copy of {bytes} bytes at offset {offset} exceeds the device buffer of {size} bytes"),
        ));
    }
    Ok(())
}

pub fn malloc(bytes: u64) -> NdResult<u64> {
    with_cuda!({
        let mut p: *mut std::os::raw::c_void = std::ptr::null_mut();
        cu(unsafe { ffi::ndk_malloc(&mut p, bytes.max(1)) }, "cudaMalloc")?;
        let h = p as u64;
        ALLOCS.lock().unwrap_or_else(|p| p.into_inner()).insert(h, bytes);
        Ok(h)
    })
}

pub fn free(handle: u64) -> NdResult<()> {
    with_cuda!({
        let known = ALLOCS.lock().unwrap_or_else(|p| p.into_inner()).remove(&handle).is_some();
        if !known {
            return Err(NdError::invalid(format!("device handle {handle:#x} is not a live allocation (double free?)")));
        }
        cu(unsafe { ffi::ndk_free(handle as *mut _) }, "cudaFree")
    })
}

pub fn upload(handle: u64, offset: u64, src: &[u8]) -> NdResult<()> {
    with_cuda!({
        check_range(handle, offset, src.len() as u64)?;
        let dst = (handle + offset) as *mut std::os::raw::c_void;
        cu(unsafe { ffi::ndk_memcpy_h2d(dst, src.as_ptr() as *const _, src.len() as u64) }, "cudaMemcpy H2D")
    })
}

pub fn download(handle: u64, offset: u64, dst: &mut [u8]) -> NdResult<()> {
    with_cuda!({
        check_range(handle, offset, dst.len() as u64)?;
        let src = (handle + offset) as *const std::os::raw::c_void;
        cu(unsafe { ffi::ndk_memcpy_d2h(dst.as_mut_ptr() as *mut _, src, dst.len() as u64) }, "cudaMemcpy D2H")
    })
}

pub fn synchronize() -> NdResult<()> {
    with_cuda!({ cu(unsafe { ffi::ndk_synchronize() }, "cudaDeviceSynchronize") })
}

/// y = a*x + y over n f32 elements of two device buffers (the GPU smoke kernel).
pub fn saxpy(a: f32, x: u64, y: u64, n: u64) -> NdResult<()> {
    with_cuda!({
        check_range(x, 0, n.saturating_mul(4))?;
        check_range(y, 0, n.saturating_mul(4))?;
        cu(unsafe { ffi::ndk_saxpy(a, x as *const f32, y as *mut f32, n) }, "saxpy")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the CPU-only machine the answer is an error with a readable message; with a GPU it works.
    #[test]
    fn device_count_answers_or_explains() {
        match device_count() {
            Ok(n) => assert!(n >= 0),
            Err(e) => {
                assert!(matches!(e.status, Status::NoCuda | Status::Cuda), "{e}");
                assert!(!e.message.is_empty());
            }
        }
        if std::env::var("ND_REQUIRE_CUDA").as_deref() == Ok("1") {
            assert!(device_count().unwrap() > 0, "ND_REQUIRE_CUDA=1 but no CUDA device");
        }
    }

    #[test]
    fn unknown_handles_are_refused() {
        let e = upload(0xdead_0000, 0, &[1, 2, 3]).unwrap_err();
        if HAS_CUDA {
            assert_eq!(e.status, Status::InvalidArgument);
            assert!(e.message.contains("not a live nndet allocation"));
        } else {
            assert_eq!(e.status, Status::NoCuda);
        }
    }

    #[test]
    fn gpu_round_trip_and_saxpy() {
        let Ok(n) = device_count() else { return };
        if n == 0 {
            return;
        }
        let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let y: Vec<f32> = vec![1.0; 1000];
        let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
        let (dx, dy) = (malloc(4000).unwrap(), malloc(4000).unwrap());
        upload(dx, 0, &bytes(&x)).unwrap();
        upload(dy, 0, &bytes(&y)).unwrap();
        saxpy(2.0, dx, dy, 1000).unwrap();
        synchronize().unwrap();
        let mut out = vec![0u8; 4000];
        download(dy, 0, &mut out).unwrap();
        for i in 0..1000 {
            let v = f32::from_le_bytes(out[i * 4..i * 4 + 4].try_into().unwrap());
            assert_eq!(v, 2.0 * i as f32 + 1.0);
        }
        assert_eq!(download(dy, 3996, &mut [0u8; 8]).unwrap_err().status, Status::BufferSize);
        free(dx).unwrap();
        free(dy).unwrap();
        assert!(free(dx).is_err());
    }
}
