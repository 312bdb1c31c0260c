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
//! treats every anchor as its own group. Both give identical candidates. Threaded over GTs. Anchors come as
//! an [A, 6] array or as the plan's levels (`anchors::Grid`, computed on demand: no 48 MB read per call).
use super::anchors::Grid;
use super::boxes::{center, center_dist, iou};
use crate::pool::pool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// nnDetection `Matcher.BELOW_LOW_THRESHOLD`: background.
pub const BELOW_LOW_THRESHOLD: i32 = -1;
/// nnDetection `Matcher.BETWEEN_THRESHOLDS`: defined by nnDetection, never produced by ATSS.
pub const BETWEEN_THRESHOLDS: i32 = -2;
/// Margin of the centre-in-GT test (`center_in_boxes(eps=0.01)`).
pub const CENTER_IN_GT_EPS: f32 = 0.01;

/// An anchor set read by index: a flat [A, 6] array, or a grid computed on demand (anchors::Grid).
pub trait AnchorSet: Sync {
    /// The groups of level `l` = [lo, hi) when they are known without reading the anchors.
    fn known_groups(&self, _l: usize, _lo: usize, _hi: usize) -> Option<Groups> {
        None
    }
    fn len(&self) -> usize;
    fn get(&self, i: usize) -> [f32; 6];
    /// f(i, anchor i) for i in s..e in order.
    fn visit<F: FnMut(usize, [f32; 6])>(&self, s: usize, e: usize, f: F);
}

/// Anchors held in a flat [A, 6] array.
pub struct Flat<'a>(pub &'a [f32]);

impl AnchorSet for Flat<'_> {
    fn len(&self) -> usize {
        self.0.len() / 6
    }
    #[inline]
    fn get(&self, i: usize) -> [f32; 6] {
        self.0[i * 6..i * 6 + 6].try_into().unwrap()
    }
    fn visit<F: FnMut(usize, [f32; 6])>(&self, s: usize, e: usize, mut f: F) {
        for i in s..e {
            f(i, self.get(i));
        }
    }
}

impl AnchorSet for Grid {
    /// NOTE: when the level's arithmetic is exact (Grid::centres_exact), each position is one group centred
    /// at `i * stride`, which is what reading every anchor would find.
    fn known_groups(&self, l: usize, lo: usize, _hi: usize) -> Option<Groups> {
        if !self.centres_exact(l) {
            return None;
        }
        let lv = &self.levels()[l];
        let [f0, f1, f2] = lv.fmap;
        let per = lv.per_location();
        let mut g = Groups { start: Vec::with_capacity(f0 * f1 * f2), center: Vec::with_capacity(f0 * f1 * f2) };
        for p in 0..f0 * f1 * f2 {
            let (ix, iy, iz) = (p / (f1 * f2), (p / f2) % f1, p % f2);
            g.start.push((lo + p * per) as u32);
            g.center.push([(ix * lv.stride[0]) as f32, (iy * lv.stride[1]) as f32, (iz * lv.stride[2]) as f32]);
        }
        Some(g)
    }
    fn len(&self) -> usize {
        Grid::len(self)
    }
    #[inline]
    fn get(&self, i: usize) -> [f32; 6] {
        Grid::get(self, i)
    }
    fn visit<F: FnMut(usize, [f32; 6])>(&self, s: usize, e: usize, f: F) {
        Grid::visit(self, s, e, f)
    }
}

/// Runs of consecutive anchors with identical centres: (first anchor index, centre).
pub struct Groups {
    start: Vec<u32>,
    center: Vec<[f32; 3]>,
}

fn same(a: &[f32; 3], b: &[f32; 3]) -> bool {
    a[0].to_bits() == b[0].to_bits() && a[1].to_bits() == b[1].to_bits() && a[2].to_bits() == b[2].to_bits()
}

/// Groups of one level [lo, hi); `grouped = false` makes every anchor a group (the plain path). Sets `bad` to
/// the index of a non-finite anchor if it meets one (the check rides along this pass over the anchors).
fn groups_of<A: AnchorSet>(anchors: &A, lo: usize, hi: usize, grouped: bool, bad: &AtomicUsize) -> Groups {
    let n = hi - lo;
    let chunk = 1usize << 15;
    let nchunks = n.div_ceil(chunk);
    let parts: Vec<std::sync::Mutex<(Vec<u32>, Vec<[f32; 3]>)>> =
        (0..nchunks).map(|_| std::sync::Mutex::new((Vec::new(), Vec::new()))).collect();
    pool().parallel_for(nchunks, |c| {
        let (s, e) = (lo + c * chunk, (lo + (c + 1) * chunk).min(hi));
        let mut st = Vec::new();
        let mut ce = Vec::new();
        let mut prev = if s > lo { Some(center(&anchors.get(s - 1))) } else { None };
        anchors.visit(s, e, |i, a| {
            if !a.iter().all(|v| v.is_finite()) {
                bad.fetch_min(i, Ordering::Relaxed);
            }
            let ci = center(&a);
            let new = match &prev {
                Some(p) => !grouped || !same(p, &ci),
                None => true,
            };
            if new {
                st.push(i as u32);
                ce.push(ci);
            }
            prev = Some(ci);
        });
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
fn positives_of_gt<A: AnchorSet>(
    gt: &[f32],
    anchors: &A,
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
    let ious: Vec<f32> = cand.iter().map(|&a| iou(gt, &anchors.get(a as usize))).collect();
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
            if center_in_gt && !center_inside(&center(&anchors.get(a as usize)), gt) {
                continue;
            }
            pos.push((a, ious[i]));
        }
    }
    pos
}

/// ATSS matches [A] for GT boxes `gt` [G,6] (see the module notes). `grouped` selects the fast path.
/// Returns Err(index) of a non-finite anchor (anchors are only read, and checked, when there is a GT).
pub fn atss_match<A: AnchorSet>(
    gt: &[f32],
    anchors: &A,
    per_level: &[usize],
    per_loc: usize,
    num_candidates: usize,
    center_in_gt: bool,
    grouped: bool,
    matches: &mut [i32],
) -> Result<(), usize> {
    let na = anchors.len();
    let addr = matches.as_mut_ptr() as usize;
    pool().parallel_chunks(na, 1 << 16, |s, e| {
        // SAFETY: disjoint ranges.
        unsafe { std::slice::from_raw_parts_mut((addr as *mut i32).add(s), e - s) }.fill(BELOW_LOW_THRESHOLD);
    });
    let ng = gt.len() / 6;
    if ng == 0 || na == 0 {
        return Ok(());
    }
    let mut levels = Vec::with_capacity(per_level.len());
    let mut lo = 0;
    for &c in per_level {
        levels.push((lo, lo + c));
        lo += c;
    }
    let bad = AtomicUsize::new(usize::MAX);
    let groups: Vec<Groups> = levels
        .iter()
        .enumerate()
        .map(|(l, &(lo, hi))| {
            let known = if grouped { anchors.known_groups(l, lo, hi) } else { None };
            known.unwrap_or_else(|| groups_of(anchors, lo, hi, grouped, &bad))
        })
        .collect();
    let bad = bad.into_inner();
    if bad != usize::MAX {
        return Err(bad);
    }
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::detect::anchors::{generate, Grid, Level};

    fn rng(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32) / (1u64 << 24) as f32
    }

    #[test]
    fn grouped_equals_plain_on_random_gts() {
        let exact = vec![
            Level { widths: vec![3.0, 5.0, 8.0], heights: vec![4.0, 6.0, 9.0], depths: vec![2.0, 3.0, 5.0], fmap: [6, 5, 4], stride: [4, 4, 4] },
            Level { widths: vec![6.0, 10.0, 16.0], heights: vec![8.0, 12.0, 18.0], depths: vec![4.0, 6.0, 10.0], fmap: [3, 3, 2], stride: [8, 8, 8] },
        ];
        // 3.3 / 2 is not a short binary fraction: centres are read anchor by anchor (no known groups).
        let inexact = vec![
            Level { widths: vec![3.3, 5.0, 8.1], heights: vec![4.0, 6.7, 9.0], depths: vec![2.0, 3.0, 5.5], fmap: [6, 5, 4], stride: [4, 4, 4] },
            Level { widths: vec![6.6, 10.0, 16.2], heights: vec![8.0, 13.4, 18.0], depths: vec![4.0, 6.0, 11.0], fmap: [3, 3, 2], stride: [8, 8, 8] },
        ];
        assert!(Grid::new(&exact).centres_exact(0) && !Grid::new(&inexact).centres_exact(0));
        for levels in [exact, inexact] {
            check_levels(&levels);
        }
    }

    fn check_levels(levels: &[Level]) {
        let per_level: Vec<usize> = levels.iter().map(|l| l.count()).collect();
        let mut anchors = vec![0f32; per_level.iter().sum::<usize>() * 6];
        generate(levels, &mut anchors);
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
                atss_match(&gt, &Flat(&anchors), &per_level, 27, 4, cig, true, &mut a).unwrap();
                atss_match(&gt, &Flat(&anchors), &per_level, 27, 4, cig, false, &mut b).unwrap();
                assert_eq!(a, b);
                atss_match(&gt, &Grid::new(levels), &per_level, 27, 4, cig, true, &mut b).unwrap();
                assert_eq!(a, b);
                assert!(cig || a.iter().any(|&m| m >= 0));
            }
        }
    }
}
