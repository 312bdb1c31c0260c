//! Detection losses with gradients, mirroring nnDetection (spec §5.8):
//! - `bce_onehot`: `BCEWithLogitsLossOneHot(reduction='mean')` (nndet/losses/classification.py): target 0 =
//!   background (all-zero row), k > 0 -> one-hot column k-1; mean over N·C entries.
//! - `giou_loss`: `GIoULoss(reduction='sum', eps=1e-7)` (nndet/losses/regression.py) = -Σ GIoU(pred_i,
//!   target_i) (minus GIoU, not 1 - GIoU); eps on the enclosing volume only.
//! - `head_loss`: `DetectionHeadHNMNative.compute_loss` of v001 (nndet/arch/heads/comb.py) for given sampled
//!   indices: cls = BCE mean over rows cat(pos, neg); reg = GIoULoss(decode(deltas[pos], anchors[pos]),
//!   gt[pos]) / max(1, #pos), NaN (nnDetection: absent) without positives; gradients of cls + reg.
//!
//! Math runs in f64 (inputs and outputs f32); torch's tie rules are followed for the gradient: min/max of
//! equal values split the gradient in half, clamp(min=0) passes it at exactly 0, clamp(max=clip) of the
//! decode passes it at exactly clip.
use super::anchors::delta_slots;

#[inline]
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// BCE-with-logits of one entry: max(x,0) - x*t + log1p(exp(-|x|)).
#[inline]
fn bce(x: f64, t: f64) -> f64 {
    x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()
}

/// Mean BCE over rows `rows` of logits [*, c] with labels (0 bg, k -> column k-1); adds `scale * dL/dx`
/// into grad (same layout). Returns the loss.
pub fn bce_rows(logits: &[f32], labels: &[i32], c: usize, rows: &[usize], grad: &mut [f32]) -> f64 {
    let n = (rows.len() * c) as f64;
    let mut sum = 0.0;
    for &r in rows {
        for k in 0..c {
            let x = logits[r * c + k] as f64;
            let t = if labels[r] == k as i32 + 1 { 1.0 } else { 0.0 };
            sum += bce(x, t);
            grad[r * c + k] += ((sigmoid(x) - t) / n) as f32;
        }
    }
    sum / n
}

/// BCEWithLogitsLossOneHot over all rows of logits [n, c]; grad overwritten. Returns the loss.
pub fn bce_onehot(logits: &[f32], targets: &[i32], c: usize, grad: &mut [f32]) -> f64 {
    grad.fill(0.0);
    let rows: Vec<usize> = (0..targets.len()).collect();
    bce_rows(logits, targets, c, &rows, grad)
}

/// torch.minimum/maximum gradient share of `a` against `b`: 1, 0.5 on ties, 0.
#[inline]
fn share(a_wins: bool, tie: bool) -> f64 {
    if tie {
        0.5
    } else if a_wins {
        1.0
    } else {
        0.0
    }
}

const AXES: [(usize, usize); 3] = [(0, 2), (1, 3), (4, 5)];

/// GIoU(p, t) with eps on the enclosing volume, and dGIoU/dp scaled by `g` added into `gp`.
pub fn giou_fwd_bwd(p: &[f64; 6], t: &[f64; 6], eps: f64, g: f64, gp: &mut [f64; 6]) -> f64 {
    let mut pe = [0.0; 3];
    let mut ir = [0.0; 3];
    let mut er = [0.0; 3];
    let mut te = [0.0; 3];
    for (a, &(lo, hi)) in AXES.iter().enumerate() {
        pe[a] = p[hi] - p[lo];
        te[a] = t[hi] - t[lo];
        ir[a] = p[hi].min(t[hi]) - p[lo].max(t[lo]);
        er[a] = p[hi].max(t[hi]) - p[lo].min(t[lo]);
    }
    let ie: Vec<f64> = ir.iter().map(|&v| v.max(0.0)).collect();
    let ee: Vec<f64> = er.iter().map(|&v| v.max(0.0)).collect();
    let vp = pe[0] * pe[1] * pe[2];
    let vt = te[0] * te[1] * te[2];
    let inter = ie[0] * ie[1] * ie[2];
    let union = vp + vt - inter;
    let iou = inter / union;
    let encl = ee[0] * ee[1] * ee[2] + eps;
    let giou = iou - (encl - union) / encl;
    // backward
    let d_encl = -g * union / (encl * encl);
    let d_union = g / encl - g * inter / (union * union);
    let d_inter = g / union - d_union;
    let d_vp = d_union;
    for (a, &(lo, hi)) in AXES.iter().enumerate() {
        let (b, c) = ((a + 1) % 3, (a + 2) % 3);
        let d_pe = d_vp * pe[b] * pe[c];
        let d_ie = if ir[a] >= 0.0 { d_inter * ie[b] * ie[c] } else { 0.0 };
        let d_ee = if er[a] >= 0.0 { d_encl * ee[b] * ee[c] } else { 0.0 };
        gp[hi] += d_pe
            + d_ie * share(p[hi] < t[hi], p[hi] == t[hi])
            + d_ee * share(p[hi] > t[hi], p[hi] == t[hi]);
        gp[lo] += -d_pe - d_ie * share(p[lo] > t[lo], p[lo] == t[lo])
            - d_ee * share(p[lo] < t[lo], p[lo] == t[lo]);
    }
    giou
}

fn row6(x: &[f32], i: usize) -> [f64; 6] {
    let mut r = [0.0; 6];
    for k in 0..6 {
        r[k] = x[i * 6 + k] as f64;
    }
    r
}

/// GIoULoss(sum, eps): returns -Σ GIoU; per-box GIoU into `giou_out` [n]; dLoss/dpred into grad [n,6].
pub fn giou_loss(pred: &[f32], target: &[f32], eps: f64, giou_out: &mut [f32], grad: &mut [f32]) -> f64 {
    let n = pred.len() / 6;
    let mut loss = 0.0;
    for i in 0..n {
        let mut gp = [0.0; 6];
        let v = giou_fwd_bwd(&row6(pred, i), &row6(target, i), eps, -1.0, &mut gp);
        giou_out[i] = v as f32;
        loss -= v;
        for k in 0..6 {
            grad[i * 6 + k] = gp[k] as f32;
        }
    }
    loss
}

/// Decode one row in f64; returns the box and, per axis, (exp(d)*a_w, clamp passes).
pub fn decode_f64(d: &[f64; 6], a: &[f64; 6], w: [f64; 6], clip: f64) -> ([f64; 6], [(f64, bool); 3]) {
    let mut b = [0.0; 6];
    let mut aux = [(0.0, true); 3];
    for (ax, &(lo, hi)) in AXES.iter().enumerate() {
        let aw = a[hi] - a[lo];
        let ac = a[lo] + 0.5 * aw;
        let (dc, ds) = delta_slots(ax);
        let dwh = d[ds] / w[ds];
        let pass = dwh <= clip;
        let pw = dwh.min(clip).exp() * aw;
        let pc = d[dc] / w[dc] * aw + ac;
        b[lo] = pc - 0.5 * pw;
        b[hi] = pc + 0.5 * pw;
        aux[ax] = (pw, pass);
    }
    (b, aux)
}

/// GIoU(decode(d, a), t) with eps 1e-7 and g * dGIoU/dd (through the decode).
pub fn reg_row(d: &[f64; 6], a: &[f64; 6], t: &[f64; 6], w: [f64; 6], clip: f64, g: f64) -> (f64, [f64; 6]) {
    let (b, aux) = decode_f64(d, a, w, clip);
    let mut gb = [0.0; 6];
    let v = giou_fwd_bwd(&b, t, 1e-7, g, &mut gb);
    let mut gd = [0.0; 6];
    for (ax, &(lo, hi)) in AXES.iter().enumerate() {
        let aw = a[hi] - a[lo];
        let (dc, ds) = delta_slots(ax);
        let (pw, pass) = aux[ax];
        gd[dc] = (gb[lo] + gb[hi]) * aw / w[dc];
        if pass {
            gd[ds] = 0.5 * (gb[hi] - gb[lo]) * pw / w[ds];
        }
    }
    (v, gd)
}

/// Inputs of `head_loss`; arrays are concatenated over the images of a batch.
pub struct HeadLossInput<'a> {
    pub logits: &'a [f32],     // [A, c]
    pub deltas: &'a [f32],     // [A, 6]
    pub anchors: &'a [f32],    // [A, 6]
    pub labels: &'a [i32],     // [A]: -1 ignore, 0 background, k = class k-1
    pub matched_gt: &'a [f32], // [A, 6]
    pub pos: &'a [i32],
    pub neg: &'a [i32],
    pub c: usize,
    pub weights: [f64; 6],
    pub clip: f64,
}

/// Returns (loss_cls, loss_reg or NaN); gradients of cls + reg into grad_logits [A,c], grad_deltas [A,6]
/// (both overwritten; rows that were not sampled get 0).
pub fn head_loss(x: &HeadLossInput, grad_logits: &mut [f32], grad_deltas: &mut [f32]) -> (f64, f64) {
    grad_logits.fill(0.0);
    grad_deltas.fill(0.0);
    let rows: Vec<usize> = x.pos.iter().chain(x.neg.iter()).map(|&i| i as usize).collect();
    let cls = if rows.is_empty() { f64::NAN } else { bce_rows(x.logits, x.labels, x.c, &rows, grad_logits) };
    if x.pos.is_empty() {
        return (cls, f64::NAN);
    }
    let scale = 1.0 / x.pos.len() as f64;
    let mut reg = 0.0;
    for &pi in x.pos {
        let i = pi as usize;
        let (v, gd) = reg_row(&row6(x.deltas, i), &row6(x.anchors, i), &row6(x.matched_gt, i), x.weights, x.clip, -scale);
        reg -= v;
        for k in 0..6 {
            grad_deltas[i * 6 + k] += gd[k] as f32;
        }
    }
    (cls, reg * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd<F: Fn(&[f64; 6]) -> f64>(f: F, x: &[f64; 6], k: usize, h: f64) -> f64 {
        let (mut a, mut b) = (*x, *x);
        a[k] += h;
        b[k] -= h;
        (f(&a) - f(&b)) / (2.0 * h)
    }

    #[test]
    fn giou_gradient_matches_finite_differences() {
        let cases: [([f64; 6], [f64; 6]); 4] = [
            ([0.3, 1.1, 4.7, 5.2, -1.0, 2.5], [1.0, 0.0, 5.5, 4.0, 0.5, 3.0]),
            ([0.0, 0.0, 2.0, 2.0, 0.0, 2.0], [3.1, 3.2, 5.0, 6.0, 2.5, 4.0]),
            ([1.0, 1.0, 9.0, 8.0, 1.0, 7.0], [2.0, 2.5, 4.0, 5.0, 3.0, 4.5]),
            ([2.2, -1.3, 3.9, 0.4, 7.1, 9.9], [2.0, -1.0, 4.0, 0.5, 7.0, 10.0]),
        ];
        for (p, t) in cases {
            let mut g = [0.0; 6];
            giou_fwd_bwd(&p, &t, 1e-7, 1.0, &mut g);
            for k in 0..6 {
                let n = fd(|q| giou_fwd_bwd(q, &t, 1e-7, 1.0, &mut [0.0; 6]), &p, k, 1e-6);
                assert!((g[k] - n).abs() <= 1e-7 + 1e-5 * n.abs(), "coord {k}: {} vs fd {}", g[k], n);
            }
        }
    }

    #[test]
    fn decode_giou_and_bce_gradients_match_finite_differences() {
        let a = [2.0, 1.0, 8.0, 7.5, 0.0, 5.0];
        let t = [2.5, 1.0, 7.0, 7.5, 0.0, 4.0];
        let w = [1.0, 2.0, 1.0, 0.5, 1.0, 1.0];
        let clip = (1000.0f64 / 16.0).ln();
        for d in [[-0.3, 0.1, -0.2, 0.15, 0.25, 0.4], [0.05, -0.02, 0.3, -0.4, 0.0, 0.1]] {
            let (_, g) = reg_row(&d, &a, &t, w, clip, 1.0);
            for k in 0..6 {
                let n = fd(|q| reg_row(q, &a, &t, w, clip, 1.0).0, &d, k, 1e-6);
                assert!((g[k] - n).abs() <= 1e-7 + 1e-5 * n.abs(), "delta {k}: {} vs fd {}", g[k], n);
            }
        }
        // above the clip the size delta gets no gradient
        let (_, g) = reg_row(&[0.0, 0.0, 5.0, 0.0, 0.0, 0.0], &a, &t, w, clip, 1.0);
        assert_eq!(g[2], 0.0);
        for (x, tt) in [(0.7, 1.0), (-2.3, 0.0), (15.0, 0.0), (-15.0, 1.0)] {
            let h = 1e-6;
            let n = (bce(x + h, tt) - bce(x - h, tt)) / (2.0 * h);
            assert!((sigmoid(x) - tt - n).abs() < 1e-8, "bce at {x}");
        }
    }
}
