//! Greedy 3D NMS, mirroring nnDetection `nms_cpu` / `batched_nms` (nndet/core/boxes/nms.py) and the
//! ensembler's `batched_weighted_nms_model` (nndet/inference/detection/model.py).
//!
//! Rule: visit boxes by score descending (ties: lower index first, i.e. torch.sort(stable=True)); keep the
//! first unvisited box; drop every later box whose IoU with it is not `<= thr` (so IoU > thr drops, and a
//! NaN IoU — two zero-volume boxes, 0/0 — drops too). The kept box always leaves the pool (nnDetection's loop
//! would spin forever for thr >= 1; here nothing but NaN pairs is suppressed then). Class-wise NMS shifts
//! every box by `label * (max coordinate + 1)` in f32 exactly as nnDetection does, then runs one NMS, so
//! IoUs are those of the shifted boxes (and zero-volume boxes of different classes still suppress each
//! other through their NaN IoU, as in nnDetection). Callers reject NaN/inf input and inverted boxes.
//!
//! Plain path: the greedy loop over all later boxes (O(N·kept)). Fast path (thr >= 0): boxes sorted by x1;
//! a kept box only tests boxes whose x-range can overlap it (x1 in (x1_k - max width, x2_k)), because any
//! other box has intersection 0 and IoU 0 <= thr; zero-volume boxes are handled as a group (a kept
//! zero-volume box drops every later zero-volume box). Wide scans are split over the pool.
use super::boxes::{area, iou_v};
use crate::pool::pool;

/// Order of boxes by score descending, ties by lower index.
pub fn order_desc(scores: &[f32]) -> Vec<u32> {
    let mut o: Vec<u32> = (0..scores.len() as u32).collect();
    o.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]).then(a.cmp(&b)));
    o
}

/// The boxes nnDetection's batched_nms feeds to nms: shifted by label * (max coordinate + 1).
pub fn shift_by_label(boxes: &[f32], labels: &[i32]) -> Vec<f32> {
    let mx = boxes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let step = mx + 1.0;
    let mut out = boxes.to_vec();
    for (i, b) in out.chunks_exact_mut(6).enumerate() {
        let off = labels[i] as f32 * step;
        for v in b.iter_mut() {
            *v += off;
        }
    }
    out
}

/// Plain greedy NMS: kept indices in keep order.
pub fn nms_plain(boxes: &[f32], scores: &[f32], thr: f32) -> Vec<i32> {
    let order = order_desc(scores);
    let n = order.len();
    let vol: Vec<f32> = boxes.chunks_exact(6).map(area).collect();
    let mut removed = vec![false; n];
    let mut keep = Vec::new();
    for r in 0..n {
        if removed[r] {
            continue;
        }
        let i = order[r] as usize;
        keep.push(i as i32);
        let bi = &boxes[i * 6..i * 6 + 6];
        for q in r + 1..n {
            if removed[q] {
                continue;
            }
            let j = order[q] as usize;
            let v = iou_v(bi, &boxes[j * 6..j * 6 + 6], vol[i], vol[j]);
            if !(v <= thr) {
                removed[q] = true;
            }
        }
    }
    keep
}

#[derive(Clone, Copy)]
struct Sorted {
    b: [f32; 6],
    vol: f32,
    rank: u32,
}

/// Fast greedy NMS (same result as `nms_plain`); falls back to it for thr < 0.
pub fn nms_fast(boxes: &[f32], scores: &[f32], thr: f32) -> Vec<i32> {
    if !(thr >= 0.0) {
        return nms_plain(boxes, scores, thr);
    }
    let order = order_desc(scores);
    let n = order.len();
    let mut rank = vec![0u32; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    let mut by_x: Vec<u32> = (0..n as u32).collect();
    by_x.sort_by(|&a, &b| boxes[a as usize * 6].total_cmp(&boxes[b as usize * 6]).then(a.cmp(&b)));
    let s: Vec<Sorted> = by_x
        .iter()
        .map(|&i| {
            let b: [f32; 6] = boxes[i as usize * 6..i as usize * 6 + 6].try_into().unwrap();
            Sorted { b, vol: area(&b), rank: rank[i as usize] }
        })
        .collect();
    let x1: Vec<f32> = s.iter().map(|e| e.b[0]).collect();
    let max_w = s.iter().map(|e| e.b[2] - e.b[0]).fold(0.0f32, f32::max);
    let mut pos_of_rank = vec![0u32; n];
    for (p, e) in s.iter().enumerate() {
        pos_of_rank[e.rank as usize] = p as u32;
    }
    // Zero-volume boxes by rank: a kept one drops all later ones (NaN IoU).
    let zero_ranks: Vec<u32> = (0..n as u32).filter(|&r| s[pos_of_rank[r as usize] as usize].vol == 0.0).collect();
    let mut zero_next = 0usize;
    let mut removed = vec![false; n];
    let mut keep = Vec::new();
    for r in 0..n as u32 {
        let p = pos_of_rank[r as usize] as usize;
        if removed[p] {
            continue;
        }
        let k = s[p];
        keep.push(order[r as usize] as i32);
        if k.vol == 0.0 {
            while zero_next < zero_ranks.len() {
                let zr = zero_ranks[zero_next];
                zero_next += 1;
                if zr > r {
                    removed[pos_of_rank[zr as usize] as usize] = true;
                }
            }
            continue;
        }
        // NOTE: the window is widened by a relative slack so f32 rounding of widths never hides an overlap.
        let lo_x = k.b[0] - max_w * (1.0 + 1e-5) - k.b[0].abs() * 1e-5 - 1e-30;
        let lo = x1.partition_point(|&v| v <= lo_x);
        let hi = x1.partition_point(|&v| v < k.b[2]);
        if hi <= lo {
            continue;
        }
        let scan = |a: usize, e: usize, rm: *mut bool| {
            for j in a..e {
                // SAFETY: each j is written by one task only; reads of other flags are not needed.
                let rj = unsafe { &mut *rm.add(j) };
                let sj = &s[j];
                if *rj || sj.rank <= r {
                    continue;
                }
                let v = iou_v(&k.b, &sj.b, k.vol, sj.vol);
                if !(v <= thr) {
                    *rj = true;
                }
            }
        };
        let rm = removed.as_mut_ptr() as usize;
        if hi - lo > 16384 {
            pool().parallel_chunks(hi - lo, 8192, |a, e| scan(lo + a, lo + e, rm as *mut bool));
        } else {
            scan(lo, hi, rm as *mut bool);
        }
    }
    keep
}

/// NMS dispatch: class-wise when `labels` is given (nnDetection's shift), fast path unless `plain`.
pub fn nms(boxes: &[f32], scores: &[f32], labels: Option<&[i32]>, thr: f32, plain: bool) -> Vec<i32> {
    if scores.is_empty() {
        return Vec::new();
    }
    let shifted;
    let b = match labels {
        Some(l) => {
            shifted = shift_by_label(boxes, l);
            &shifted[..]
        }
        None => boxes,
    };
    if plain {
        nms_plain(b, scores, thr)
    } else {
        nms_fast(b, scores, thr)
    }
}

/// batched_weighted_nms_model: class-wise NMS ranked by score * weight (f32), kept indices in keep order.
pub fn weighted_nms(boxes: &[f32], scores: &[f32], weights: &[f32], labels: &[i32], thr: f32, plain: bool) -> Vec<i32> {
    let sw: Vec<f32> = scores.iter().zip(weights).map(|(s, w)| s * w).collect();
    nms(boxes, &sw, Some(labels), thr, plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32) / (1u64 << 24) as f32
    }

    fn random_boxes(n: usize, seed: &mut u64, extent: f32, degenerate: bool) -> (Vec<f32>, Vec<f32>, Vec<i32>) {
        let mut b = Vec::new();
        let mut s = Vec::new();
        let mut l = Vec::new();
        for i in 0..n {
            let (x, y, z) = (lcg(seed) * extent, lcg(seed) * extent, lcg(seed) * extent);
            let (w, h, d) = (2.0 + lcg(seed) * 20.0, 2.0 + lcg(seed) * 20.0, 2.0 + lcg(seed) * 20.0);
            let w = if degenerate && i % 7 == 0 { 0.0 } else { (w * 4.0).round() / 4.0 };
            b.extend_from_slice(&[x.round(), y.round(), x.round() + w, y.round() + h.round(), z.round(), z.round() + d.round()]);
            s.push((lcg(seed) * 16.0).round() / 16.0);
            l.push((lcg(seed) * 3.0) as i32);
        }
        (b, s, l)
    }

    #[test]
    fn fast_equals_plain() {
        let mut seed = 3u64;
        for &(n, ext) in &[(1usize, 10.0f32), (50, 30.0), (400, 60.0), (3000, 120.0)] {
            for deg in [false, true] {
                let (b, s, l) = random_boxes(n, &mut seed, ext, deg);
                for thr in [0.0f32, 1e-5, 0.1, 0.5, 0.9, 1.0, -0.5] {
                    assert_eq!(nms(&b, &s, None, thr, true), nms(&b, &s, None, thr, false), "n={n} thr={thr}");
                    assert_eq!(nms(&b, &s, Some(&l), thr, true), nms(&b, &s, Some(&l), thr, false));
                }
            }
        }
    }

    #[test]
    fn no_two_kept_same_class_boxes_overlap_above_threshold() {
        let mut seed = 11u64;
        let (b, s, l) = random_boxes(2000, &mut seed, 80.0, false);
        for thr in [0.1f32, 0.3, 0.6] {
            let keep = nms(&b, &s, Some(&l), thr, false);
            for (x, &i) in keep.iter().enumerate() {
                for &j in &keep[x + 1..] {
                    let (i, j) = (i as usize, j as usize);
                    if l[i] == l[j] {
                        let v = super::super::boxes::iou(&b[i * 6..i * 6 + 6], &b[j * 6..j * 6 + 6]);
                        assert!(v <= thr + 1e-6, "kept {i},{j} with IoU {v} > {thr}");
                    }
                }
            }
        }
    }
}
