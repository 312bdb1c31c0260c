//! The machine's peak f32 FMA rate, for the conv benchmark's "fraction of peak": every pool thread runs
//! a register-only loop of independent FMAs (enough chains to cover latency x pipes) at the CPU level in
//! use, for a given time. FLOPs count 2 per FMA lane.

use crate::cpu::features::{level, Level};
use crate::pool::pool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const ITERS: usize = 1 << 14;

/// Run the FMA loop on all pool threads for about `seconds`; returns GFLOP/s over all threads.
/// NOTE: many short tasks rather than one per thread, so a worker that wakes late still takes its share
/// (with one task per thread, the caller could run both and the probe would measure one core).
pub fn peak_gflops(seconds: f64) -> f64 {
    let threads = pool().threads();
    let tasks = threads * 20;
    let slice = seconds / 20.0;
    let flops = AtomicU64::new(0);
    let sink = AtomicU64::new(0);
    let t0 = Instant::now();
    pool().parallel_for(tasks, |_| {
        let start = Instant::now();
        let mut done = 0u64;
        while start.elapsed().as_secs_f64() < slice {
            let (f, s) = burst();
            done += f;
            sink.fetch_add(s.to_bits() as u64 & 1, Ordering::Relaxed);
        }
        flops.fetch_add(done, Ordering::Relaxed);
    });
    let el = t0.elapsed().as_secs_f64();
    std::hint::black_box(sink.load(Ordering::Relaxed));
    flops.load(Ordering::Relaxed) as f64 / el / 1e9
}

/// One burst of FMAs; returns (flops, a value that depends on every chain).
fn burst() -> (u64, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            Level::Avx512 => return unsafe { x86::burst512() },
            Level::Avx2 => return unsafe { x86::burst256() },
            Level::Scalar => {}
        }
    }
    let mut a = [1.0f32; 8];
    let m = std::hint::black_box(0.999_f32);
    for _ in 0..ITERS {
        for v in a.iter_mut() {
            *v = v.mul_add(m, 1e-6);
        }
    }
    ((ITERS * 8 * 2) as u64, a.iter().sum())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ITERS;
    use std::arch::x86_64::*;

    macro_rules! fma_burst {
        ($name:ident, $feat:literal, $lanes:expr, $set1:ident, $fma:ident, $add:ident, $store:ident, $t:ty) => {
            #[target_feature(enable = $feat)]
            pub unsafe fn $name() -> (u64, f32) {
                let m = $set1(std::hint::black_box(0.999));
                let c = $set1(1e-6);
                let mut a: [$t; 16] = [$set1(1.0); 16];
                for _ in 0..ITERS {
                    for v in a.iter_mut() {
                        *v = $fma(*v, m, c);
                    }
                }
                let mut s = a[0];
                for v in &a[1..] {
                    s = $add(s, *v);
                }
                let mut o = [0f32; $lanes];
                $store(o.as_mut_ptr(), s);
                ((ITERS * 16 * $lanes * 2) as u64, o.iter().sum())
            }
        };
    }
    fma_burst!(burst512, "avx512f", 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, __m512);
    fma_burst!(burst256, "avx2,fma", 8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, __m256);
}
