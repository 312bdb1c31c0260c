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
//! Plain path: the greedy loop over all later boxes (O(N·kept)). Fast path (thr >= 0): a multi-level grid
//! (see `nms_fast`) so a kept box only tests boxes that can intersect it; any other box has intersection 0
//! and IoU 0 <= thr. Zero-volume boxes are handled as a group (a kept zero-volume box drops every later
//! zero-volume box). The greedy pass is sequential; with labels, each label runs as its own task when the
//! shift provably separates them (see `classes_independent`).
use super::boxes::{area, iou_v};
use crate::pool::pool;

/// Order of boxes by score descending, ties (including -0 vs +0) by lower index; callers reject NaN.
pub fn order_desc(scores: &[f32]) -> Vec<u32> {
    let mut o: Vec<u32> = (0..scores.len() as u32).collect();
    o.sort_by(|&a, &b| {
        let (x, y) = (scores[a as usize], scores[b as usize]);
        y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b))
    });
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

/// FxHash (rustc's hasher): cell keys need speed, not DoS resistance.
#[derive(Default)]
struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for &x in bytes {
            self.write_u64(x as u64);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517cc1b727220a95);
    }
    fn write_i64(&mut self, x: i64) {
        self.write_u64(x as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Cell = (i64, i64, i64);

/// One size level of the spatial index: boxes whose largest side is < `cell` (a power of four), keyed by
/// the cell of their low corner; `cells` maps a key to its range of `ranks`.
struct Level {
    cell: f64,
    min_vol: f32,
    max_vol: f32,
    cells: std::collections::HashMap<Cell, (u32, u32), std::hash::BuildHasherDefault<Fx>>,
    ranks: Vec<u32>,
}

impl Level {
    fn key(&self, b: &[f32; 6]) -> Cell {
        ((b[0] as f64 / self.cell).floor() as i64, (b[1] as f64 / self.cell).floor() as i64, (b[4] as f64 / self.cell).floor() as i64)
    }
}

/// Exponent e with 2^e <= m < 2^(e+1) for a positive finite f32 (subnormals count as 2^-127).
fn exponent(m: f32) -> i32 {
    ((m.to_bits() >> 23) & 0xff) as i32 - 127
}

/// Fast greedy NMS (same result as `nms_plain`); falls back to it for thr < 0.
///
/// NOTE: boxes go into size levels (cell = a power of four above the largest side, so a box's side is
/// < cell) keyed by the cell of (x1, y1, z1). A box j can intersect k only if x1_j > x1_k - cell, i.e. its
/// key lies in [floor(x1_k/cell) - 1, floor(x2_k/cell)] per axis; divisions by a power of two are exact, so
/// the search misses nothing. When a level has fewer boxes than cells to visit, its boxes are scanned; a
/// level whose volumes all differ from v_k by more than a factor 1/thr is skipped (IoU <= v_small / v_big).
pub fn nms_fast(boxes: &[f32], scores: &[f32], thr: f32) -> Vec<i32> {
    if !(thr >= 0.0) {
        return nms_plain(boxes, scores, thr);
    }
    let order = order_desc(scores);
    let n = order.len();
    let b: Vec<[f32; 6]> = order.iter().map(|&i| boxes[i as usize * 6..i as usize * 6 + 6].try_into().unwrap()).collect();
    let vol: Vec<f32> = b.iter().map(|x| area(x)).collect();
    let mut by_level: std::collections::BTreeMap<i32, Vec<u32>> = Default::default();
    for r in 0..n {
        if vol[r] == 0.0 {
            continue;
        }
        let x = &b[r];
        let m = (x[2] - x[0]).max(x[3] - x[1]).max(x[5] - x[4]);
        // cell = 4^ceil((e+1)/2) > m: few levels, each searched through at most 4 cells per axis
        by_level.entry((exponent(m) + 2).div_euclid(2) * 2).or_default().push(r as u32);
    }
    // A sparse level costs more lookups than it saves: fold it into the next larger one (still side < cell).
    let mut merged: Vec<(i32, Vec<u32>)> = Vec::new();
    let mut carry: Vec<u32> = Vec::new();
    let lv: Vec<(i32, Vec<u32>)> = by_level.into_iter().collect();
    for (i, (e, mut rs)) in lv.iter().cloned().enumerate() {
        rs.append(&mut carry);
        match lv.get(i + 1) {
            Some((_, next)) if rs.len() * 8 < next.len() => carry = rs,
            _ => merged.push((e, rs)),
        }
    }
    let levels: Vec<Level> = merged
        .into_iter()
        .map(|(e, rs)| {
            let max_vol = rs.iter().map(|&r| vol[r as usize]).fold(0.0f32, f32::max);
            let min_vol = rs.iter().map(|&r| vol[r as usize]).fold(f32::INFINITY, f32::min);
            let mut lv = Level { cell: 2f64.powi(e), min_vol, max_vol, cells: Default::default(), ranks: Vec::new() };
            let mut kr: Vec<(Cell, u32)> = rs.iter().map(|&r| (lv.key(&b[r as usize]), r)).collect();
            kr.sort_unstable();
            lv.ranks = kr.iter().map(|x| x.1).collect();
            let mut a = 0;
            while a < kr.len() {
                let mut e = a + 1;
                while e < kr.len() && kr[e].0 == kr[a].0 {
                    e += 1;
                }
                lv.cells.insert(kr[a].0, (a as u32, e as u32));
                a = e;
            }
            lv
        })
        .collect();
    // Zero-volume boxes by rank: a kept one drops all later ones (NaN IoU).
    let zero_ranks: Vec<u32> = (0..n as u32).filter(|&r| vol[r as usize] == 0.0).collect();
    let mut zero_next = 0usize;
    let mut removed = vec![false; n];
    let mut keep = Vec::new();
    for r in 0..n {
        if removed[r] {
            continue;
        }
        keep.push(order[r] as i32);
        let k = &b[r];
        if vol[r] == 0.0 {
            for &zr in &zero_ranks[zero_next..] {
                if zr as usize > r {
                    removed[zr as usize] = true;
                }
            }
            zero_next = zero_ranks.len();
            continue;
        }
        let test = |j: u32, removed: &mut [bool]| {
            let j = j as usize;
            if j > r && !removed[j] && !(iou_v(k, &b[j], vol[r], vol[j]) <= thr) {
                removed[j] = true;
            }
        };
        for lv in &levels {
            // IoU <= min(v_j, v_k) / max(v_j, v_k): a level of boxes far smaller or far larger than k cannot
            // reach thr (0.999 absorbs f32 rounding of the IoU).
            if lv.max_vol < thr * vol[r] * 0.999 || vol[r] < thr * lv.min_vol * 0.999 {
                continue;
            }
            let lo = lv.key(k);
            let hi = lv.key(&[k[2], k[3], 0.0, 0.0, k[5], 0.0]);
            let (x0, y0, z0) = (lo.0 - 1, lo.1 - 1, lo.2 - 1);
            let cells = ((hi.0 - x0 + 1) as f64) * ((hi.1 - y0 + 1) as f64) * ((hi.2 - z0 + 1) as f64);
            if cells >= lv.ranks.len() as f64 {
                for &j in &lv.ranks {
                    test(j, &mut removed);
                }
                continue;
            }
            for ix in x0..=hi.0 {
                for iy in y0..=hi.1 {
                    for iz in z0..=hi.2 {
                        if let Some(&(a, e)) = lv.cells.get(&(ix, iy, iz)) {
                            for &j in &lv.ranks[a as usize..e as usize] {
                                test(j, &mut removed);
                            }
                        }
                    }
                }
            }
        }
    }
    keep
}

/// Labels of the shifted boxes can be run independently (in parallel) when the shift really separates them:
/// coordinates >= 0 (so label blocks cannot overlap), shifted values small enough that f32 keeps them apart,
/// and no zero-volume box (whose NaN IoU would reach across labels, as in nnDetection).
fn classes_independent(boxes: &[f32], shifted: &[f32]) -> bool {
    boxes.iter().all(|&v| v >= 0.0)
        && shifted.iter().all(|&v| v.abs() < (1 << 23) as f32)
        && shifted.chunks_exact(6).all(|b| area(b) > 0.0)
}

/// Class-wise greedy NMS with one task per label; the keep lists merge back into score order, which is the
/// order the single greedy pass over all labels produces when labels cannot suppress each other.
fn nms_by_class(shifted: &[f32], scores: &[f32], labels: &[i32], thr: f32) -> Vec<i32> {
    let mut groups: std::collections::BTreeMap<i32, Vec<u32>> = Default::default();
    for (i, &l) in labels.iter().enumerate() {
        groups.entry(l).or_default().push(i as u32);
    }
    let groups: Vec<Vec<u32>> = groups.into_values().collect();
    let kept: Vec<std::sync::Mutex<Vec<i32>>> = groups.iter().map(|_| Default::default()).collect();
    pool().parallel_for(groups.len(), |g| {
        let idx = &groups[g];
        let b: Vec<f32> = idx.iter().flat_map(|&i| shifted[i as usize * 6..i as usize * 6 + 6].iter().copied()).collect();
        let s: Vec<f32> = idx.iter().map(|&i| scores[i as usize]).collect();
        let k = nms_fast(&b, &s, thr).into_iter().map(|j| idx[j as usize] as i32).collect();
        *kept[g].lock().unwrap() = k;
    });
    let mut keep: Vec<i32> = kept.into_iter().flat_map(|m| m.into_inner().unwrap()).collect();
    keep.sort_by(|&a, &b| {
        let (x, y) = (scores[a as usize], scores[b as usize]);
        y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b))
    });
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
            if !plain && thr >= 0.0 && scores.len() >= 4096 && classes_independent(boxes, &shifted) {
                return nms_by_class(&shifted, scores, l, thr);
            }
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
        for &(n, ext) in &[(1usize, 10.0f32), (50, 30.0), (400, 60.0), (5000, 120.0)] {
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
