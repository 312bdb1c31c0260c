//! One function per op: the argument checks every backend shares, then dispatch. One file per family.
pub mod base;
pub mod prep;
pub mod engine;
pub mod conv;
pub mod detect;
