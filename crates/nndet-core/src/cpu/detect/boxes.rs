//! 3D box primitives, mirroring nnDetection `nndet/core/boxes/ops.py` (box_area, box_iou,
//! generalized_box_iou, box_center, box_center_dist, remove_small_boxes) and `clip.py`
//! (clip_boxes_to_image). Boxes are rows of 6 f32 `(x1, y1, x2, y2, z1, z2)`.
//!
//! f32 operation order as torch evaluates it: `vol = ((x2-x1)*(y2-y1))*(z2-z1)`,
//! `union = (v1 + v2) - inter`, `iou = inter / union`, `giou = iou - (encl - union) / encl` with
//! `encl = enclosing volume + eps`. NaN propagates like torch.maximum/minimum (NaN in, NaN out); two
//! zero-volume boxes have IoU 0/0 = NaN, as in nnDetection.
use crate::pool::pool;

/// torch.maximum semantics: NaN if either is NaN.
#[inline(always)]
pub fn maxp(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() {
        a
    } else {
        b
    }
}

/// torch.minimum semantics: NaN if either is NaN.
#[inline(always)]
pub fn minp(a: f32, b: f32) -> f32 {
    if a < b || a.is_nan() {
        a
    } else {
        b
    }
}

/// clamp(min=0) keeping NaN.
#[inline(always)]
pub fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

#[inline(always)]
pub fn area(b: &[f32]) -> f32 {
    ((b[2] - b[0]) * (b[3] - b[1])) * (b[5] - b[4])
}

/// Intersection volume of two boxes (no eps).
#[inline(always)]
pub fn inter(a: &[f32], b: &[f32]) -> f32 {
    let dx = relu(minp(a[2], b[2]) - maxp(a[0], b[0]));
    let dy = relu(minp(a[3], b[3]) - maxp(a[1], b[1]));
    let dz = relu(minp(a[5], b[5]) - maxp(a[4], b[4]));
    (dx * dy) * dz
}

/// IoU given precomputed volumes (box_iou, eps 0).
#[inline(always)]
pub fn iou_v(a: &[f32], b: &[f32], va: f32, vb: f32) -> f32 {
    let i = inter(a, b);
    i / ((va + vb) - i)
}

#[inline(always)]
pub fn iou(a: &[f32], b: &[f32]) -> f32 {
    iou_v(a, b, area(a), area(b))
}

/// Generalized IoU with `eps` added to the enclosing volume only (generalized_box_iou; GIoULoss uses 1e-7).
#[inline(always)]
pub fn giou(a: &[f32], b: &[f32], eps: f32) -> f32 {
    let (va, vb) = (area(a), area(b));
    let i = inter(a, b);
    let union = (va + vb) - i;
    let iou = i / union;
    let ex = relu(maxp(a[2], b[2]) - minp(a[0], b[0]));
    let ey = relu(maxp(a[3], b[3]) - minp(a[1], b[1]));
    let ez = relu(maxp(a[5], b[5]) - minp(a[4], b[4]));
    let encl = ((ex * ey) * ez) + eps;
    iou - (encl - union) / encl
}

#[inline(always)]
pub fn center(b: &[f32]) -> [f32; 3] {
    [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0, (b[4] + b[5]) / 2.0]
}

/// Euclidean distance of two centres as torch computes it: sqrt((dx² + dy²) + dz²) in f32.
#[inline(always)]
pub fn center_dist(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    let dx = a[0] - b[0];
    let dy = a[1] - b[1];
    let dz = a[2] - b[2];
    ((dx * dx + dy * dy) + dz * dz).sqrt()
}

/// Which pairwise quantity `pairwise` computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairwise {
    Iou = 0,
    Giou = 1,
    CenterDist = 2,
}

/// out[i*m + j] = f(a_i, b_j) for boxes a [n,6], b [m,6]; threaded over rows.
pub fn pairwise(a: &[f32], b: &[f32], kind: Pairwise, eps: f32, out: &mut [f32]) {
    let (n, m) = (a.len() / 6, b.len() / 6);
    debug_assert_eq!(out.len(), n * m);
    if n == 0 || m == 0 {
        return;
    }
    let vb: Vec<f32> = b.chunks_exact(6).map(area).collect();
    let cb: Vec<[f32; 3]> = b.chunks_exact(6).map(center).collect();
    let addr = out.as_mut_ptr() as usize;
    let rows_per = (65536 / m).max(1);
    pool().parallel_chunks(n, rows_per, |s, e| {
        // SAFETY: disjoint row ranges of out.
        let o = unsafe { std::slice::from_raw_parts_mut((addr as *mut f32).add(s * m), (e - s) * m) };
        for i in s..e {
            let ai = &a[i * 6..i * 6 + 6];
            let row = &mut o[(i - s) * m..(i - s + 1) * m];
            match kind {
                Pairwise::Iou => {
                    let va = area(ai);
                    for (j, r) in row.iter_mut().enumerate() {
                        *r = iou_v(ai, &b[j * 6..j * 6 + 6], va, vb[j]);
                    }
                }
                Pairwise::Giou => {
                    for (j, r) in row.iter_mut().enumerate() {
                        *r = giou(ai, &b[j * 6..j * 6 + 6], eps);
                    }
                }
                Pairwise::CenterDist => {
                    let ca = center(ai);
                    for (j, r) in row.iter_mut().enumerate() {
                        *r = center_dist(&ca, &cb[j]);
                    }
                }
            }
        }
    });
}

/// out[i] = f(a_i, b_i) (the diagonal of `pairwise`), for boxes of equal count.
pub fn elementwise(a: &[f32], b: &[f32], kind: Pairwise, eps: f32, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        let (ai, bi) = (&a[i * 6..i * 6 + 6], &b[i * 6..i * 6 + 6]);
        *o = match kind {
            Pairwise::Iou => iou(ai, bi),
            Pairwise::Giou => giou(ai, bi, eps),
            Pairwise::CenterDist => center_dist(&center(ai), &center(bi)),
        };
    }
}

/// Per box: volume into `areas` [n] and centre into `centers` [n,3].
pub fn areas_centers(b: &[f32], areas: &mut [f32], centers: &mut [f32]) {
    for (i, bx) in b.chunks_exact(6).enumerate() {
        areas[i] = area(bx);
        centers[i * 3..i * 3 + 3].copy_from_slice(&center(bx));
    }
}

/// clip_boxes_to_image: x to [0, s0], y to [0, s1], z to [0, s2], in place (NaN stays NaN).
pub fn clip(b: &mut [f32], shape: [f32; 3]) {
    for bx in b.chunks_exact_mut(6) {
        clip_one(bx, shape);
    }
}

#[inline(always)]
pub fn clip_one(bx: &mut [f32], s: [f32; 3]) {
    const AXIS: [usize; 6] = [0, 1, 0, 1, 2, 2];
    for k in 0..6 {
        bx[k] = minp(maxp(bx[k], 0.0), s[AXIS[k]]);
    }
}

/// remove_small_boxes: true when every side is >= min_size (a NaN side fails).
#[inline(always)]
pub fn big_enough(bx: &[f32], min_size: f32) -> bool {
    (bx[2] - bx[0]) >= min_size && (bx[3] - bx[1]) >= min_size && (bx[5] - bx[4]) >= min_size
}

/// Indices of boxes with every side >= min_size, ascending; returns the count written into `keep`.
pub fn remove_small(b: &[f32], min_size: f32, keep: &mut [i32]) -> usize {
    let mut n = 0;
    for (i, bx) in b.chunks_exact(6).enumerate() {
        if big_enough(bx, min_size) {
            keep[n] = i as i32;
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_values() {
        let a = [0.0, 0.0, 2.0, 2.0, 0.0, 2.0];
        let b = [1.0, 1.0, 3.0, 3.0, 1.0, 3.0];
        assert_eq!(iou(&a, &b), 1.0 / 15.0);
        assert!((giou(&a, &b, 0.0) - (1.0 / 15.0 - 12.0 / 27.0)).abs() < 1e-7);
        let z = [1.0, 1.0, 1.0, 2.0, 0.0, 2.0];
        assert!(iou(&z, &z).is_nan(), "zero volume with itself is 0/0");
        assert_eq!(iou(&a, &z), 0.0);
        let mut c = [-1.0, 0.5, 9.0, 3.0, f32::NAN, 2.0];
        clip_one(&mut c, [4.0, 4.0, 4.0]);
        assert_eq!(&c[..4], &[0.0, 0.5, 4.0, 3.0]);
        assert!(c[4].is_nan());
    }
}
