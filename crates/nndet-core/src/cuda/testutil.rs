//! Shared helpers of the device kernel tests: a small xorshift RNG (deterministic, no crates) and
//! host <-> device shorthands.

use crate::cuda::{sync, Backend, DevBuf};

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [0, 1), 24 bits.
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-1, 1).
    pub fn f(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }
    /// n values f() * scale + shift.
    pub fn vec(&mut self, n: usize, scale: f32, shift: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale + shift).collect()
    }
}

pub fn up<T: Copy>(b: Backend, v: &[T]) -> DevBuf {
    DevBuf::from_slice(b, v).unwrap()
}

pub fn zeros(b: Backend, bytes: usize) -> DevBuf {
    DevBuf::zeroed(b, bytes.max(4)).unwrap()
}

/// The buffer's contents after the device finished (panics on a kernel error).
pub fn down<T: Copy>(d: &DevBuf) -> Vec<T> {
    sync(d.backend()).unwrap();
    d.to_vec::<T>().unwrap()
}
