//! ATSS matcher, mirroring nnDetection `ATSSMatcher.compute_matches` (nndet/core/boxes/matcher/atss.py).
//!
//! Inputs: GT boxes [G,6], anchors [A,6] ordered level-major (`per_level` counts), `per_loc` anchors per
//! position. Per GT and level the `min(num_candidates * per_loc, anchors in level)` anchors with the
//! smallest centre distance are candidates (ties: lower anchor index first; torch.topk's tie order is
//! unspecified). Threshold = mean + unbiased std of the candidates' IoUs (mean = f32 sum / n, std computed in
//! f64 as torch's Welford does, then f32); a candidate with IoU >= threshold is positive (optionally its
//! centre must lie more than 0.01 inside the GT). An anchor positive for several GTs takes the highest IoU,
//! the first GT on equal IoU. Output `matches[a]` = GT index or `BELOW_LOW_THRESHOLD` (background).
//!
//! Fast path: consecutive anchors with bit-identical centres (the cell anchors of one position) share one
//! distance, so distances are computed once per position (27x fewer for nnDetection plans); the plain path
//! treats every anchor as its own group. Both give identical candidates. Threaded over GTs.
use super::boxes::{center, center_dist, iou};
use crate::pool::pool;
use std::collections::HashMap;

/// nnDetection `Matcher.BELOW_LOW_THRESHOLD`: background.
pub const BELOW_LOW_THRESHOLD: i32 = -1;
/// nnDetection `Matcher.BETWEEN_THRESHOLDS`: defined by nnDetection, never produced by ATSS.
pub const BETWEEN_THRESHOLDS: i32 = -2;
/// Margin of the centre-in-GT test (`center_in_boxes(eps=0.01)`).
pub const CENTER_IN_GT_EPS: f32 = 0.01;

/// Runs of consecutive anchors with identical centres: (first anchor index, centre).
struct Groups {
    start: Vec<u32>,
    center: Vec<[f32; 3]>,
}

fn same(a: &[f32; 3], b: &[f32; 3]) -> bool {
    a[0].to_bits() == b[0].to_bits() && a[1].to_bits() == b[1].to_bits() && a[2].to_bits() == b[2].to_bits()
}

/// Groups of one level [lo, hi); `grouped = false` makes every anchor a group (the plain path).
fn groups_of(anchors: &[f32], lo: usize, hi: usize, grouped: bool) -> Groups {
    let n = hi - lo;
    let chunk = 1usize << 15;
    let nchunks = n.div_ceil(chunk);
    let parts: Vec<std::sync::Mutex<(Vec<u32>, Vec<[f32; 3]>)>> =
        (0..nchunks).map(|_| std::sync::Mutex::new((Vec::new(), Vec::new()))).collect();
    pool().parallel_for(nchunks, |c| {
        let (s, e) = (lo + c * chunk, (lo + (c + 1) * chunk).min(hi));
        let mut st = Vec::new();
        let mut ce = Vec::new();
        let mut prev = if s > lo { Some(center(&anchors[(s - 1) * 6..s * 6])) } else { None };
        for i in s..e {
            let ci = center(&anchors[i * 6..i * 6 + 6]);
            let new = match &prev {
                Some(p) => !grouped || !same(p, &ci),
                None => true,
            };
            if new {
                st.push(i as u32);
                ce.push(ci);
            }
            prev = Some(ci);
        }
        *parts[c].lock().unwrap() = (st, ce);
    });
    let mut g = Groups { start: Vec::new(), center: Vec::new() };
    for p in parts {
        let (s, c) = p.into_inner().unwrap();
        g.start.extend(s);
        g.center.extend(c);
    }
    g
}

/// Candidate anchors of one GT in one level: the k nearest, ties to lower index.
fn candidates(gc: &[f32; 3], g: &Groups, hi: usize, k: usize, out: &mut Vec<u32>) {
    let ng = g.start.len();
    let mut d: Vec<(f32, u32)> = (0..ng).map(|j| (center_dist(gc, &g.center[j]), j as u32)).collect();
    // Every group holds at least one anchor, so the k nearest anchors lie in the k nearest groups.
    let m = k.min(ng);
    let cmp = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if m < ng {
        d.select_nth_unstable_by(m - 1, cmp);
        d.truncate(m);
    }
    d.sort_unstable_by(cmp);
    let mut left = k;
    for (_, j) in d {
        let j = j as usize;
        let s = g.start[j] as usize;
        let e = if j + 1 < ng { g.start[j + 1] as usize } else { hi };
        for a in s..e {
            if left == 0 {
                return;
            }
            out.push(a as u32);
            left -= 1;
        }
    }
}

fn center_inside(c: &[f32; 3], b: &[f32]) -> bool {
    let m = (c[0] - b[0]).min(c[1] - b[1]).min(b[2] - c[0]).min(b[3] - c[1]).min(c[2] - b[4]).min(b[5] - c[2]);
    m > CENTER_IN_GT_EPS
}

/// Positive (anchor, IoU) pairs of one GT.
fn positives_of_gt(
    gt: &[f32],
    anchors: &[f32],
    levels: &[(usize, usize)],
    groups: &[Groups],
    k_per_level: &[usize],
    center_in_gt: bool,
) -> Vec<(u32, f32)> {
    let gc = center(gt);
    let mut cand = Vec::new();
    for (l, &(_, hi)) in levels.iter().enumerate() {
        candidates(&gc, &groups[l], hi, k_per_level[l], &mut cand);
    }
    let ious: Vec<f32> = cand.iter().map(|&a| iou(gt, &anchors[a as usize * 6..a as usize * 6 + 6])).collect();
    let n = ious.len();
    if n == 0 {
        return Vec::new();
    }
    let sum: f64 = ious.iter().map(|&v| v as f64).sum();
    let mean = (sum as f32) / (n as f32);
    let md = sum / n as f64;
    let var = ious.iter().map(|&v| (v as f64 - md) * (v as f64 - md)).sum::<f64>() / (n as f64 - 1.0);
    let thr = mean + (var.sqrt() as f32);
    let mut pos = Vec::new();
    for (i, &a) in cand.iter().enumerate() {
        if ious[i] >= thr {
            let ab = &anchors[a as usize * 6..a as usize * 6 + 6];
            if center_in_gt && !center_inside(&center(ab), gt) {
                continue;
            }
            pos.push((a, ious[i]));
        }
    }
    pos
}

/// ATSS matches [A] for GT boxes `gt` [G,6] (see the module notes). `grouped` selects the fast path.
pub fn atss_match(
    gt: &[f32],
    anchors: &[f32],
    per_level: &[usize],
    per_loc: usize,
    num_candidates: usize,
    center_in_gt: bool,
    grouped: bool,
    matches: &mut [i32],
) {
    let na = anchors.len() / 6;
    let addr = matches.as_mut_ptr() as usize;
    pool().parallel_chunks(na, 1 << 16, |s, e| {
        // SAFETY: disjoint ranges.
        unsafe { std::slice::from_raw_parts_mut((addr as *mut i32).add(s), e - s) }.fill(BELOW_LOW_THRESHOLD);
    });
    let ng = gt.len() / 6;
    if ng == 0 || na == 0 {
        return;
    }
    let mut levels = Vec::with_capacity(per_level.len());
    let mut lo = 0;
    for &c in per_level {
        levels.push((lo, lo + c));
        lo += c;
    }
    let groups: Vec<Groups> = levels.iter().map(|&(lo, hi)| groups_of(anchors, lo, hi, grouped)).collect();
    let k_per_level: Vec<usize> = levels.iter().map(|&(lo, hi)| (num_candidates * per_loc).min(hi - lo)).collect();
    let per_gt: Vec<std::sync::Mutex<Vec<(u32, f32)>>> = (0..ng).map(|_| std::sync::Mutex::new(Vec::new())).collect();
    pool().parallel_for(ng, |g| {
        let p = positives_of_gt(&gt[g * 6..g * 6 + 6], anchors, &levels, &groups, &k_per_level, center_in_gt);
        *per_gt[g].lock().unwrap() = p;
    });
    let mut best: HashMap<u32, f32> = HashMap::new();
    for (g, p) in per_gt.into_iter().enumerate() {
        for (a, v) in p.into_inner().unwrap() {
            let e = best.entry(a).or_insert(f32::NEG_INFINITY);
            if v > *e {
                *e = v;
                matches[a as usize] = g as i32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::detect::anchors::{generate, Level};

    fn rng(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32) / (1u64 << 24) as f32
    }

    #[test]
    fn grouped_equals_plain_on_random_gts() {
        let levels = vec![
            Level { widths: vec![3.0, 5.0, 8.0], heights: vec![4.0, 6.0, 9.0], depths: vec![2.0, 3.0, 5.0], fmap: [6, 5, 4], stride: [4, 4, 4] },
            Level { widths: vec![6.0, 10.0, 16.0], heights: vec![8.0, 12.0, 18.0], depths: vec![4.0, 6.0, 10.0], fmap: [3, 3, 2], stride: [8, 8, 8] },
        ];
        let per_level: Vec<usize> = levels.iter().map(|l| l.count()).collect();
        let mut anchors = vec![0f32; per_level.iter().sum::<usize>() * 6];
        generate(&levels, &mut anchors);
        let mut seed = 7u64;
        for ng in [1usize, 3, 9] {
            let mut gt = Vec::new();
            for _ in 0..ng {
                let (x, y, z) = (rng(&mut seed) * 24.0, rng(&mut seed) * 20.0, rng(&mut seed) * 16.0);
                let (w, h, d) = (1.0 + rng(&mut seed) * 10.0, 1.0 + rng(&mut seed) * 10.0, 1.0 + rng(&mut seed) * 6.0);
                gt.extend_from_slice(&[x, y, x + w, y + h, z, z + d]);
            }
            for cig in [false, true] {
                let mut a = vec![0i32; anchors.len() / 6];
                let mut b = vec![0i32; anchors.len() / 6];
                atss_match(&gt, &anchors, &per_level, 27, 4, cig, true, &mut a);
                atss_match(&gt, &anchors, &per_level, 27, 4, cig, false, &mut b);
                assert_eq!(a, b);
                assert!(cig || a.iter().any(|&m| m >= 0));
            }
        }
    }
}
