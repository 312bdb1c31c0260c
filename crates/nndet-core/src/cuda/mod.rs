//! The device backends as the rest of the core sees them. `Backend::Cuda`: the `ndk_*` launchers of
//! `cuda/*.cu` built by nvcc (cfg `nd_cuda`; in the stub build every call answers `Status::NoCuda`).
//! `Backend::Emu`: the same kernel sources built for the CPU emulator (`cuda/emu/`, launchers `ndke_*`),
//! always present: the tests run every kernel through it, and through the GPU where there is one
//! (`test_backends`). Device buffers are addresses (u64) registered in one table with their size and
//! backend, so a copy out of bounds, an argument outside any live allocation, a pointer of the other backend,
//! a free of an unknown handle or a double free is an error, not a crash (`span`).
//! Kernel families declare their launchers with `launchers!` (launch.rs) in their own files.

#![cfg_attr(not(nd_cuda), allow(unused_variables))]

use crate::error::{NdError, NdResult, Status};

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

#[macro_use]
pub mod launch;
pub mod mem;
pub mod selftest;
#[cfg(test)]
pub mod testutil;
pub mod conv;
pub mod detect;
pub mod engine;
pub mod optim;

pub use mem::*;

/// Where kernels run: the GPU, or the CPU emulator of the same kernel sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cuda,
    Emu,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cuda => "cuda",
            Backend::Emu => "emu",
        }
    }
}

#[cfg(nd_cuda)]
mod ffi {
    use std::os::raw::{c_char, c_int};
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
    }
}

mod emu_ffi {
    use std::os::raw::{c_char, c_int};
    extern "C" {
        pub fn ndke_error_string(code: c_int) -> *const c_char;
    }
}

use std::os::raw::{c_int, c_void};

launchers! {
    /// Memory and synchronisation (cuda/runtime.cu, cuda/emu/runtime.cpp).
    pub struct Runtime {
        fn malloc(out: *mut *mut c_void, bytes: u64);
        fn free(p: *mut c_void);
        fn memcpy_h2d(dst: *mut c_void, src: *const c_void, bytes: u64);
        fn memcpy_d2h(dst: *mut c_void, src: *const c_void, bytes: u64);
        fn memcpy_d2d(dst: *mut c_void, src: *const c_void, bytes: u64);
        fn memset(dst: *mut c_void, value: c_int, bytes: u64);
        fn synchronize();
        fn stream_create(out: *mut *mut c_void);
        fn stream_destroy(s: *mut c_void);
        fn stream_sync(s: *mut c_void);
    }
}

launchers! {
    /// The smoke kernel (cuda/smoke.cu).
    pub struct SmokeKernels {
        fn saxpy(a: f32, x: *const f32, y: *mut f32, n: u64, stream: *mut c_void);
    }
}

/// The runtime's (or the emulator's) text for an error code.
pub fn error_text(b: Backend, code: i32) -> String {
    let p = match b {
        Backend::Emu => unsafe { emu_ffi::ndke_error_string(code) },
        #[cfg(nd_cuda)]
        Backend::Cuda => unsafe { ffi::ndk_error_string(code) },
        #[cfg(not(nd_cuda))]
        Backend::Cuda => return "built without CUDA".to_string(),
    };
    // SAFETY: both return a NUL-terminated string that lives until the next call on this thread.
    unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Turn a launcher's return code into a Result whose message names the operation and the backend.
pub fn call(b: Backend, code: i32, what: &str) -> NdResult<()> {
    if code == 0 {
        return Ok(());
    }
    Err(NdError::new(Status::Cuda, format!("{what} ({}): {} (cuda error {code})", b.name(), error_text(b, code))))
}

pub fn no_cuda_error() -> NdError {
    NdError::new(Status::NoCuda, "this nndet library was built without CUDA (no nvcc at build time, or NDET_CUDA=0)")
}

/// Turn a CUDA runtime return code into a Result whose message names the operation.
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
    Err(no_cuda_error())
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

/// The backends the tests run kernels on: the emulator always, and the GPU when a device exists.
/// With ND_REQUIRE_CUDA=1 (scripts/gpu-check.sh) a missing GPU is a failure.
pub fn test_backends() -> Vec<Backend> {
    let mut v = vec![Backend::Emu];
    let n = device_count().unwrap_or(0);
    if n > 0 {
        v.push(Backend::Cuda);
    } else if std::env::var("ND_REQUIRE_CUDA").as_deref() == Ok("1") {
        panic!("ND_REQUIRE_CUDA=1 but no CUDA device: {:?}", device_count());
    }
    v
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
        let e = upload_on(Backend::Cuda, 0xdead_0000, 0, &[1, 2, 3]).unwrap_err();
        if HAS_CUDA {
            assert_eq!(e.status, Status::InvalidArgument);
            assert!(e.message.contains("not a live nndet allocation"));
        } else {
            assert_eq!(e.status, Status::NoCuda);
        }
    }

    #[test]
    fn saxpy_on_every_backend_and_span_checks() {
        for b in test_backends() {
            let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
            let dx = DevBuf::from_slice(b, &x).unwrap();
            let dy = DevBuf::from_slice(b, &vec![1.0f32; 1000]).unwrap();
            // a range in the middle of an allocation, as an arena slot
            saxpy_on(b, 2.0, dx.ptr() + 400, dy.ptr() + 400, 500).unwrap();
            let y = dy.to_vec::<f32>().unwrap();
            for (i, v) in y.iter().enumerate() {
                let want = if (100..600).contains(&i) { 2.0 * i as f32 + 1.0 } else { 1.0 };
                assert_eq!(*v, want, "{b:?} element {i}");
            }
            let e = saxpy_on(b, 1.0, dx.ptr() + 400, dy.ptr(), 901).unwrap_err();
            assert_eq!(e.status, Status::BufferSize, "{e}");
            assert!(e.message.starts_with("x:"), "{e}");
            let e = saxpy_on(b, 1.0, 0x10, dy.ptr(), 1).unwrap_err();
            assert!(e.message.contains("not in a live nndet device allocation"), "{e}");
            let other = if b == Backend::Emu { Backend::Cuda } else { Backend::Emu };
            let e = saxpy_on(other, 1.0, dx.ptr(), dy.ptr(), 1).unwrap_err();
            assert!(matches!(e.status, Status::InvalidArgument | Status::NoCuda), "{e}");
        }
        let s = stream_create(Backend::Emu).unwrap();
        assert!(stream_ok(Backend::Emu, s).is_ok() && stream_ok(Backend::Emu, s + 1).is_err());
        stream_sync(Backend::Emu, s).unwrap();
        stream_destroy(Backend::Emu, s).unwrap();
        assert!(stream_destroy(Backend::Emu, s).is_err());
        let d = DevBuf::zeroed(Backend::Emu, 64).unwrap();
        let h = d.ptr();
        drop(d);
        assert!(free_on(Backend::Emu, h).unwrap_err().message.contains("double free"));
    }

    #[test]
    fn every_family_refuses_a_stream_that_is_not_live() {
        let b = Backend::Emu;
        let boxes = DevBuf::from_slice(b, &[0.0f32, 0.0, 2.0, 2.0, 0.0, 2.0]).unwrap();
        let out = DevBuf::zeroed(b, 64).unwrap();
        let s = stream_create(b).unwrap();
        detect::areas_centers(b, boxes.ptr(), 1, out.ptr(), out.ptr() + 16, s).unwrap();
        stream_destroy(b, s).unwrap();
        let e = detect::areas_centers(b, boxes.ptr(), 1, out.ptr(), out.ptr() + 16, s).unwrap_err();
        assert!(e.message.contains("not a live emu stream"), "{e}");
        let e = engine::fill(b, out.ptr(), 4, 4, 0, 0xdead).unwrap_err();
        assert!(e.message.contains("not a live emu stream"), "{e}");
    }

    #[test]
    fn emulator_reports_writes_outside_an_allocation() {
        let b = Backend::Emu;
        let k = SmokeKernels::of(b).unwrap();
        let x = DevBuf::from_slice(b, &vec![1.0f32; 1008]).unwrap();
        let y = DevBuf::from_slice(b, &vec![1.0f32; 1000]).unwrap();
        // the raw launcher, past the wrapper's span check: 8 floats beyond y
        let e = call(b, unsafe { (k.saxpy)(1.0, x.ptr() as _, y.ptr() as _, 1008, std::ptr::null_mut()) }, "saxpy").unwrap_err();
        assert!(e.message.contains("past the end of the allocation of 4000 bytes") && e.message.contains("by this launch"), "{e}");
        // reported once; the next launch is clean
        saxpy_on(b, 1.0, x.ptr(), y.ptr(), 1000).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap()[999], 3.0);
    }

    #[test]
    fn round_trip_saxpy_and_bounds_on_every_backend() {
        for b in test_backends() {
            let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
            let y: Vec<f32> = vec![1.0; 1000];
            let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
            let (dx, dy) = (malloc_on(b, 4000).unwrap(), malloc_on(b, 4000).unwrap());
            upload_on(b, dx, 0, &bytes(&x)).unwrap();
            upload_on(b, dy, 0, &bytes(&y)).unwrap();
            saxpy_on(b, 2.0, dx, dy, 1000).unwrap();
            sync(b).unwrap();
            let mut out = vec![0u8; 4000];
            download_on(b, dy, 0, &mut out).unwrap();
            for i in 0..1000 {
                let v = f32::from_le_bytes(out[i * 4..i * 4 + 4].try_into().unwrap());
                assert_eq!(v, 2.0 * i as f32 + 1.0, "{b:?}");
            }
            assert_eq!(download_on(b, dy, 3996, &mut [0u8; 8]).unwrap_err().status, Status::BufferSize);
            free_on(b, dx).unwrap();
            free_on(b, dy).unwrap();
            assert!(free_on(b, dx).is_err());
        }
    }
}
