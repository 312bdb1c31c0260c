//! The vector abstraction the fast conv kernels are written over: AVX-512 (16 lanes), AVX2 + FMA (8 lanes)
//! and scalar (1 lane). Kernels are generic `#[inline(always)]` code; `run_tasks` enters a
//! `#[target_feature]` function per level and runs the task there, so everything inlines into code
//! compiled for that level. Masks are lane bit patterns (bit l = lane l); masked loads neither read nor
//! fault on masked-off lanes (NOTE: pointers may then point outside the buffer, so kernels form them with
//! `wrapping_add`/`wrapping_offset` and only dereference through masked loads).

use crate::cpu::features::Level;
use crate::pool::pool;

/// # Safety
/// Every method requires a CPU with the level's features; pointer arguments follow the intrinsics'
/// rules (readable/writable for the unmasked lanes).
#[allow(clippy::missing_safety_doc)]
pub trait Simd: Copy + 'static {
    const L: usize;
    type V: Copy;
    type M: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn set1(v: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn mask(bits: u32) -> Self::M;
    unsafe fn load_m(m: Self::M, p: *const f32) -> Self::V;
    unsafe fn store_m(m: Self::M, p: *mut f32, v: Self::V);
    /// a*b + c
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Sum of the lanes.
    unsafe fn hsum(v: Self::V) -> f32;
    /// p[2l] (=|+=) v[l] + b for lanes l < n (one column phase of a stride-2 row; p[2l+1] untouched).
    #[inline(always)]
    unsafe fn store_stride2(p: *mut f32, v: Self::V, b: f32, n: usize, acc: bool) {
        let mut buf = [0f32; 16];
        Self::store(buf.as_mut_ptr(), v);
        for (l, &x) in buf.iter().enumerate().take(n.min(Self::L)) {
            let o = p.add(2 * l);
            let val = x + b;
            *o = if acc { *o + val } else { val };
        }
    }
}

/// A parallel job whose body is generic over the vector level.
#[allow(clippy::missing_safety_doc)]
pub trait Task: Sync {
    unsafe fn exec<S: Simd>(&self, i: usize);
}

#[derive(Clone, Copy)]
pub struct Scalar;

impl Simd for Scalar {
    const L: usize = 1;
    type V = f32;
    type M = bool;
    #[inline(always)]
    unsafe fn zero() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn set1(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        *p
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        *p = v
    }
    #[inline(always)]
    unsafe fn mask(bits: u32) -> bool {
        bits & 1 != 0
    }
    #[inline(always)]
    unsafe fn load_m(m: bool, p: *const f32) -> f32 {
        if m { *p } else { 0.0 }
    }
    #[inline(always)]
    unsafe fn store_m(m: bool, p: *mut f32, v: f32) {
        if m {
            *p = v
        }
    }
    #[inline(always)]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    unsafe fn hsum(v: f32) -> f32 {
        v
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub struct Avx512;
    #[derive(Clone, Copy)]
    pub struct Avx2;

    impl Simd for Avx512 {
        const L: usize = 16;
        type V = __m512;
        type M = __mmask16;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn set1(v: f32) -> __m512 {
            _mm512_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            _mm512_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn mask(bits: u32) -> __mmask16 {
            bits as __mmask16
        }
        #[inline(always)]
        unsafe fn load_m(m: __mmask16, p: *const f32) -> __m512 {
            _mm512_maskz_loadu_ps(m, p)
        }
        #[inline(always)]
        unsafe fn store_m(m: __mmask16, p: *mut f32, v: __m512) {
            _mm512_mask_storeu_ps(p, m, v)
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn hsum(v: __m512) -> f32 {
            _mm512_reduce_add_ps(v)
        }
        #[inline(always)]
        unsafe fn store_stride2(p: *mut f32, v: __m512, b: f32, n: usize, acc: bool) {
            let v = _mm512_add_ps(v, _mm512_set1_ps(b));
            // lanes 0..8 to the even floats of p[0..16], lanes 8..16 to those of p[16..32]
            let mut a = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), v);
            let mut c = _mm512_permutexvar_ps(_mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15), v);
            let even = |k: usize| (((1u32 << (2 * k)) - 1) & 0x5555) as __mmask16;
            let (ma, mc) = (even(n.min(8)), even(n.clamp(8, 16) - 8));
            let p2 = p.wrapping_add(16);
            if acc {
                a = _mm512_add_ps(_mm512_maskz_loadu_ps(ma, p), a);
                c = _mm512_add_ps(_mm512_maskz_loadu_ps(mc, p2), c);
            }
            _mm512_mask_storeu_ps(p, ma, a);
            _mm512_mask_storeu_ps(p2, mc, c);
        }
    }

    impl Simd for Avx2 {
        const L: usize = 8;
        type V = __m256;
        type M = __m256i;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn set1(v: f32) -> __m256 {
            _mm256_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn mask(bits: u32) -> __m256i {
            let lanes = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let b = _mm256_and_si256(_mm256_set1_epi32(bits as i32), lanes);
            _mm256_cmpeq_epi32(b, lanes)
        }
        #[inline(always)]
        unsafe fn load_m(m: __m256i, p: *const f32) -> __m256 {
            _mm256_maskload_ps(p, m)
        }
        #[inline(always)]
        unsafe fn store_m(m: __m256i, p: *mut f32, v: __m256) {
            _mm256_maskstore_ps(p, m, v)
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn hsum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    pub unsafe fn exec512<T: super::Task>(t: &T, i: usize) {
        t.exec::<Avx512>(i)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exec256<T: super::Task>(t: &T, i: usize) {
        t.exec::<Avx2>(i)
    }
}

/// Lanes per vector at `level`.
pub fn lanes(level: Level) -> usize {
    match level {
        Level::Avx512 => 16,
        Level::Avx2 => 8,
        Level::Scalar => 1,
    }
}

/// Run `t.exec::<S>(i)` for i in 0..n over the pool, with S the vector type of `level`.
/// The caller guarantees the CPU supports `level` (it comes from `features::level()` or a capped copy).
pub fn run_tasks<T: Task>(level: Level, n: usize, t: &T) {
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => pool().parallel_for(n, |i| unsafe { x86::exec512(t, i) }),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => pool().parallel_for(n, |i| unsafe { x86::exec256(t, i) }),
        _ => pool().parallel_for(n, |i| unsafe { t.exec::<Scalar>(i) }),
    }
}
