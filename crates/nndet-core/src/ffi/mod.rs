//! The C ABI shells, one file per op family. Each `nd_*` converts raw pointers (abi.rs) and calls an ops::
//! function inside `guard()`. Register a new family with one line here.
pub mod base;
pub mod cuda;
pub mod prep;
pub mod engine;
pub mod conv;
pub mod detect;
pub mod gpu;
