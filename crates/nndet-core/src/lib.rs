//! nndet-core: the numeric core of nndet, a plain C ABI over CPU kernels (std + std::arch) and, when built
//! with nvcc, CUDA kernels. Loaded by `src/native/lib.ts` through bun:ffi.
//!
//! ABI conventions (design notes §3):
//! - every `nd_*` returns an `i32` status (error.rs `Status`; 0 = ok), except `nd_abi_version`,
//!   `nd_last_error` and `nd_has_cuda`, which return their value directly;
//! - outputs go through out-pointers; buffers are passed as (pointer, element count) and checked in abi.rs;
//! - the shells live in ffi/<family>.rs, a few lines each around `guard()`; each body runs inside `guard()`, so errors and panics become a status plus a message that
//!   `nd_last_error` copies out; nothing unwinds across the boundary.
//!
//! Bump `ABI_VERSION` whenever a signature changes; `src/native/lib.ts` refuses a mismatched library.

pub mod abi;
pub mod cpu;
pub mod cuda;
pub mod dtype;
pub mod error;
pub mod ffi;
pub mod memory;
pub mod ops;
pub mod pool;

pub const ABI_VERSION: i32 = 3;
