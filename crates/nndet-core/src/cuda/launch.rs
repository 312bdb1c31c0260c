//! `launchers!`: declare a family of kernel launchers once for both device backends. For
//!
//!     launchers! { pub struct SmokeKernels { fn saxpy(a: f32, x: *const f32, y: *mut f32, n: u64, s: *mut c_void); } }
//!
//! it generates a struct of `unsafe extern "C" fn(..) -> c_int` fields bound to `ndk_saxpy` (the nvcc build,
//! cfg `nd_cuda`) or `ndke_saxpy` (the CPU emulator, always built), and `SmokeKernels::of(backend)`, which
//! answers NoCuda for the GPU backend in a build without nvcc. Argument types are resolved in the module
//! that invokes the macro. Launchers return a cudaError_t; `cuda::call` turns it into an NdResult.

#[macro_export]
macro_rules! launchers {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $( fn $f:ident ( $($a:ident : $t:ty),* $(,)? ); )* }) => {
        $(#[$m])*
        $vis struct $name {
            $( pub $f: unsafe extern "C" fn($($t),*) -> ::std::os::raw::c_int, )*
        }
        impl $name {
            /// The launchers of backend `b` (NoCuda for the GPU in a build without nvcc).
            #[allow(dead_code)]
            pub fn of(b: $crate::cuda::Backend) -> $crate::error::NdResult<&'static $name> {
                mod emu_syms {
                    #[allow(unused_imports)]
                    use super::*;
                    extern "C" {
                        $( #[link_name = concat!("ndke_", stringify!($f))] pub fn $f($($a: $t),*) -> ::std::os::raw::c_int; )*
                    }
                }
                static EMU: $name = $name { $( $f: emu_syms::$f, )* };
                #[cfg(nd_cuda)]
                mod gpu_syms {
                    #[allow(unused_imports)]
                    use super::*;
                    extern "C" {
                        $( #[link_name = concat!("ndk_", stringify!($f))] pub fn $f($($a: $t),*) -> ::std::os::raw::c_int; )*
                    }
                }
                #[cfg(nd_cuda)]
                static GPU: $name = $name { $( $f: gpu_syms::$f, )* };
                match b {
                    $crate::cuda::Backend::Emu => Ok(&EMU),
                    #[cfg(nd_cuda)]
                    $crate::cuda::Backend::Cuda => Ok(&GPU),
                    #[cfg(not(nd_cuda))]
                    $crate::cuda::Backend::Cuda => Err($crate::cuda::no_cuda_error()),
                }
            }
        }
    };
}
