//! CPU kernels, one file per op family. Each has a plain reference path; fast paths are tested against it.
pub mod convert;
pub mod detect;
pub mod features;
pub mod crop;
pub mod resample;
pub mod act;
pub mod norm;
pub mod optim;
pub mod conv3d;
pub mod labels;
