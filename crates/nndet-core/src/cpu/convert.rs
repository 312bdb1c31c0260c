//! Element conversion and summary statistics over flat buffers (memory-bound, threaded in chunks).
//!
//! `convert_to_f32`: raw voxel bytes of any `DType`, little- or big-endian, to f32 with `y = x*slope + inter`
//! computed in f64 (NIfTI's scl_slope/scl_inter), as nibabel does for scaled data.
//! `stats_f32`: min, max, sum, sum of squares (f64) over finite values, and counts of finite/NaN/Inf values.

use crate::dtype::DType;
use crate::pool::pool;

const CHUNK: usize = 1 << 16;

#[inline(always)]
fn read_elem(src: &[u8], i: usize, dt: DType, swap: bool) -> f64 {
    macro_rules! rd {
        ($t:ty, $n:expr) => {{
            let mut b = [0u8; $n];
            b.copy_from_slice(&src[i * $n..i * $n + $n]);
            if swap {
                <$t>::from_be_bytes(b) as f64
            } else {
                <$t>::from_le_bytes(b) as f64
            }
        }};
    }
    match dt {
        DType::U8 => src[i] as f64,
        DType::I8 => src[i] as i8 as f64,
        DType::I16 => rd!(i16, 2),
        DType::U16 => rd!(u16, 2),
        DType::I32 => rd!(i32, 4),
        DType::U32 => rd!(u32, 4),
        DType::F32 => rd!(f32, 4),
        DType::F64 => rd!(f64, 8),
    }
}

/// dst[i] = src[i] * slope + inter. `big_endian` describes src. Caller checks that sizes agree.
pub fn convert_to_f32(src: &[u8], dt: DType, big_endian: bool, slope: f64, inter: f64, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len() * dt.size());
    let identity = slope == 1.0 && inter == 0.0;
    let dst_addr = dst.as_mut_ptr() as usize;
    pool().parallel_chunks(dst.len(), CHUNK, |s, e| {
        // SAFETY: chunks are disjoint ranges of dst.
        let out = unsafe { std::slice::from_raw_parts_mut((dst_addr as *mut f32).add(s), e - s) };
        // Little-endian f32 needs no arithmetic: a plain copy.
        if identity && dt == DType::F32 && !big_endian && cfg!(target_endian = "little") {
            for (k, o) in out.iter_mut().enumerate() {
                let i = (s + k) * 4;
                *o = f32::from_le_bytes([src[i], src[i + 1], src[i + 2], src[i + 3]]);
            }
            return;
        }
        for (k, o) in out.iter_mut().enumerate() {
            let v = read_elem(src, s + k, dt, big_endian);
            *o = if identity { v as f32 } else { (v * slope + inter) as f32 };
        }
    });
}

/// Summary statistics of an f32 buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub sumsq: f64,
    pub finite: u64,
    pub nan: u64,
    pub inf: u64,
}

impl Stats {
    fn empty() -> Stats {
        Stats { min: f64::INFINITY, max: f64::NEG_INFINITY, sum: 0.0, sumsq: 0.0, finite: 0, nan: 0, inf: 0 }
    }
    fn merge(&mut self, o: &Stats) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.sumsq += o.sumsq;
        self.finite += o.finite;
        self.nan += o.nan;
        self.inf += o.inf;
    }
}

pub fn stats_f32(x: &[f32]) -> Stats {
    let n_chunks = x.len().div_ceil(CHUNK).max(1);
    let parts: Vec<std::sync::Mutex<Stats>> = (0..n_chunks).map(|_| std::sync::Mutex::new(Stats::empty())).collect();
    pool().parallel_for(n_chunks, |c| {
        let s = c * CHUNK;
        let e = (s + CHUNK).min(x.len());
        let mut st = Stats::empty();
        for &v in &x[s..e] {
            if v.is_nan() {
                st.nan += 1;
            } else if v.is_infinite() {
                st.inf += 1;
            } else {
                let d = v as f64;
                st.min = st.min.min(d);
                st.max = st.max.max(d);
                st.sum += d;
                st.sumsq += d * d;
                st.finite += 1;
            }
        }
        *parts[c].lock().unwrap() = st;
    });
    // Merge in chunk order so the sums do not depend on scheduling.
    let mut total = Stats::empty();
    for p in &parts {
        total.merge(&p.lock().unwrap());
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_every_dtype_both_endians() {
        let vals: [f64; 4] = [0.0, 1.0, 7.0, 100.0];
        for dt in [DType::U8, DType::I8, DType::I16, DType::U16, DType::I32, DType::U32, DType::F32, DType::F64] {
            for be in [false, true] {
                let mut bytes = Vec::new();
                for &v in &vals {
                    let b: Vec<u8> = match dt {
                        DType::U8 => vec![v as u8],
                        DType::I8 => vec![v as i8 as u8],
                        DType::I16 => if be { (v as i16).to_be_bytes().to_vec() } else { (v as i16).to_le_bytes().to_vec() },
                        DType::U16 => if be { (v as u16).to_be_bytes().to_vec() } else { (v as u16).to_le_bytes().to_vec() },
                        DType::I32 => if be { (v as i32).to_be_bytes().to_vec() } else { (v as i32).to_le_bytes().to_vec() },
                        DType::U32 => if be { (v as u32).to_be_bytes().to_vec() } else { (v as u32).to_le_bytes().to_vec() },
                        DType::F32 => if be { (v as f32).to_be_bytes().to_vec() } else { (v as f32).to_le_bytes().to_vec() },
                        DType::F64 => if be { v.to_be_bytes().to_vec() } else { v.to_le_bytes().to_vec() },
                    };
                    bytes.extend(b);
                }
                let mut out = [0f32; 4];
                convert_to_f32(&bytes, dt, be, 2.0, -1.0, &mut out);
                assert_eq!(out, [-1.0, 1.0, 13.0, 199.0], "{dt:?} be={be}");
            }
        }
    }

    #[test]
    fn negative_ints_and_large_buffers() {
        let src: Vec<i16> = (0..300_000).map(|i| (i % 2000 - 1000) as i16).collect();
        let bytes: Vec<u8> = src.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = vec![0f32; src.len()];
        convert_to_f32(&bytes, DType::I16, false, 1.0, 0.0, &mut out);
        assert!(src.iter().zip(&out).all(|(&a, &b)| a as f32 == b));
    }

    #[test]
    fn stats_count_nan_inf_and_sum() {
        let mut x: Vec<f32> = (0..200_001).map(|i| i as f32).collect();
        x[5] = f32::NAN;
        x[6] = f32::INFINITY;
        let s = stats_f32(&x);
        assert_eq!((s.nan, s.inf, s.finite), (1, 1, 199_999));
        assert_eq!((s.min, s.max), (0.0, 200_000.0));
        let expect: f64 = (0..200_001u64).map(|i| i as f64).sum::<f64>() - 11.0;
        assert_eq!(s.sum, expect);
    }
}
