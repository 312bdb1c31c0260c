//! Scans of instance label volumes [d0, d1, d2] (i32; ids > 0 are instances, 0 background, −1 outside):
//! per-id extents and voxel counts (nnDetection's `instances_to_boxes` reads the box from them), and the
//! rounding of a float label map to i32 (labels are read as float32 and rounded, as nnDetection does).
//! Threaded over chunks of planes; per-chunk tables merged in chunk order.

use crate::pool::pool;
use std::sync::Mutex;

/// Number of f64 values per id in `label_extents`: lo0, hi0, lo1, hi1, lo2, hi2 (inclusive), count.
pub const EXTENT_LEN: usize = 7;

/// Largest value in the volume (0 when it has no positive value).
pub fn max_label(seg: &[i32]) -> i32 {
    let parts = Mutex::new(0i32);
    pool().parallel_chunks(seg.len(), 1 << 16, |s, e| {
        let m = seg[s..e].iter().copied().max().unwrap_or(0);
        let mut g = parts.lock().unwrap();
        *g = (*g).max(m);
    });
    parts.into_inner().unwrap().max(0)
}

/// Extents of ids 1..=max_id into `out` [(max_id + 1) * EXTENT_LEN] (row 0 unused); absent ids keep
/// lo = +inf, hi = −inf, count 0. Ids above max_id are ignored (the caller sizes `out` from max_label).
pub fn label_extents(seg: &[i32], d: [usize; 3], max_id: usize, out: &mut [f64]) {
    let rows = max_id + 1;
    let empty = |t: &mut [f64]| {
        for r in t.chunks_mut(EXTENT_LEN) {
            r.copy_from_slice(&[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY, 0.0]);
        }
    };
    let plane = d[1] * d[2];
    let nchunks = pool().threads().max(1) * 2;
    let per = d[0].div_ceil(nchunks).max(1);
    let nchunks = d[0].div_ceil(per);
    let tables: Vec<Mutex<Vec<f64>>> = (0..nchunks).map(|_| Mutex::new(Vec::new())).collect();
    pool().parallel_for(nchunks, |k| {
        let mut t = vec![0f64; rows * EXTENT_LEN];
        empty(&mut t);
        for a in k * per..((k + 1) * per).min(d[0]) {
            for b in 0..d[1] {
                let row = &seg[a * plane + b * d[2]..a * plane + (b + 1) * d[2]];
                for (c, &id) in row.iter().enumerate() {
                    if id <= 0 || id as usize > max_id {
                        continue;
                    }
                    let r = &mut t[id as usize * EXTENT_LEN..(id as usize + 1) * EXTENT_LEN];
                    let (af, bf, cf) = (a as f64, b as f64, c as f64);
                    r[0] = r[0].min(af);
                    r[1] = r[1].max(af);
                    r[2] = r[2].min(bf);
                    r[3] = r[3].max(bf);
                    r[4] = r[4].min(cf);
                    r[5] = r[5].max(cf);
                    r[6] += 1.0;
                }
            }
        }
        *tables[k].lock().unwrap() = t;
    });
    empty(out);
    for t in tables {
        let t = t.into_inner().unwrap();
        for (o, v) in out.chunks_mut(EXTENT_LEN).zip(t.chunks(EXTENT_LEN)) {
            for i in 0..6 {
                o[i] = if i % 2 == 0 { o[i].min(v[i]) } else { o[i].max(v[i]) };
            }
            o[6] += v[6];
        }
    }
}

/// dst[i] = round(src[i]) as i32, halves away from zero (f32::round; NumPy's np.round would take halves
/// to even, which no integer label map contains).
pub fn round_to_i32(src: &[f32], dst: &mut [i32]) {
    let addr = dst.as_mut_ptr() as usize;
    pool().parallel_chunks(dst.len(), 1 << 16, |s, e| {
        // SAFETY: disjoint chunks of dst.
        let out = unsafe { std::slice::from_raw_parts_mut((addr as *mut i32).add(s), e - s) };
        for (o, &v) in out.iter_mut().zip(&src[s..e]) {
            *o = v.round() as i32;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_and_counts_match_a_plain_scan() {
        let d = [9, 7, 11];
        let seg: Vec<i32> = (0..d[0] * d[1] * d[2]).map(|i| ((i * 7919) % 13) as i32 - 3).collect();
        let m = max_label(&seg);
        assert_eq!(m, 9);
        let mut out = vec![0f64; (m as usize + 1) * EXTENT_LEN];
        label_extents(&seg, d, m as usize, &mut out);
        for id in 1..=m {
            let mut want = [f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY, 0.0];
            for a in 0..d[0] {
                for b in 0..d[1] {
                    for c in 0..d[2] {
                        if seg[(a * d[1] + b) * d[2] + c] == id {
                            let p = [a as f64, b as f64, c as f64];
                            for ax in 0..3 {
                                want[2 * ax] = want[2 * ax].min(p[ax]);
                                want[2 * ax + 1] = want[2 * ax + 1].max(p[ax]);
                            }
                            want[6] += 1.0;
                        }
                    }
                }
            }
            assert_eq!(&out[id as usize * EXTENT_LEN..(id as usize + 1) * EXTENT_LEN], &want[..], "id {id}");
        }
        let mut r = [0i32; 4];
        round_to_i32(&[0.4, 2.6, -1.0, 7.0], &mut r);
        assert_eq!(r, [0, 3, -1, 7]);
    }
}
