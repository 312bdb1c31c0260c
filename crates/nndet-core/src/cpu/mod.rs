//! CPU kernels, one file per op family. Each has a plain reference path; fast paths are tested against it.
pub mod convert;
pub mod detect;
pub mod features;
