//! Foreground/background segmentation loss with gradient, mirroring nnDetection `DiCESegmenterFgBg
//! .compute_loss` (nndet/arch/heads/segmenter.py) with `SoftDiceLoss` (nndet/losses/segmentation.py):
//! logits [B, 2, V] (channel 0 background, 1 foreground; V voxels), target [B, V] (> 0 is foreground).
//! `seg_ce = 0.5 * CrossEntropy` (mean over B·V voxels); `seg_dice = 0.5 * (1 - mean Dice_fg)` with softmax
//! probabilities, `Dice = (2tp + 1e-5) / (2tp + fp + fn + 1e-5)`, background excluded; batch dice sums over
//! batch and space (one Dice), otherwise one Dice per sample, averaged. The gradient written is
//! `w_ce * dseg_ce/dlogits + w_dice * dseg_dice/dlogits` (w = 1, 1 for the training loss).
//! Sums in f64, threaded over voxel chunks (two passes: statistics, then gradient).
use crate::pool::pool;
use std::sync::Mutex;

pub const SMOOTH: f64 = 1e-5;

/// Softmax foreground probability and -log p(target) of one voxel.
#[inline]
fn voxel(l0: f64, l1: f64, fg: bool) -> (f64, f64) {
    let d = l0 - l1;
    // p1 = 1 / (1 + e^(l0 - l1)); -log p_y via a stable softplus.
    let p1 = if d >= 0.0 { let e = (-d).exp(); e / (1.0 + e) } else { 1.0 / (1.0 + d.exp()) };
    let softplus = |x: f64| if x > 0.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() };
    let nll = if fg { softplus(d) } else { softplus(-d) };
    (p1, nll)
}

/// Returns (seg_ce, seg_dice); gradient [B, 2, V] overwritten.
pub fn seg_loss(
    logits: &[f32],
    target: &[i32],
    b: usize,
    batch_dice: bool,
    w_ce: f64,
    w_dice: f64,
    grad: &mut [f32],
) -> (f64, f64) {
    let v = target.len() / b;
    const CHUNK: usize = 1 << 15;
    let nchunks_per = v.div_ceil(CHUNK).max(1);
    // per sample: [tp, sum p1, sum y, ce sum]
    let stats: Vec<Mutex<[f64; 4]>> = (0..b).map(|_| Mutex::new([0.0; 4])).collect();
    pool().parallel_for(b * nchunks_per, |t| {
        let (s, c) = (t / nchunks_per, t % nchunks_per);
        let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(v));
        let (l0s, l1s) = (&logits[s * 2 * v..s * 2 * v + v], &logits[s * 2 * v + v..(s + 1) * 2 * v]);
        let mut acc = [0.0f64; 4];
        for i in lo..hi {
            let fg = target[s * v + i] > 0;
            let (p1, nll) = voxel(l0s[i] as f64, l1s[i] as f64, fg);
            let y = fg as i32 as f64;
            acc[0] += p1 * y;
            acc[1] += p1;
            acc[2] += y;
            acc[3] += nll;
        }
        let mut st = stats[s].lock().unwrap();
        for k in 0..4 {
            st[k] += acc[k];
        }
    });
    let st: Vec<[f64; 4]> = stats.into_iter().map(|m| m.into_inner().unwrap()).collect();
    let n_vox = (b * v) as f64;
    let ce = 0.5 * st.iter().map(|s| s[3]).sum::<f64>() / n_vox;
    // Dice terms: (numerator, denominator) per Dice; batch dice pools all samples.
    let terms: Vec<(f64, f64)> = if batch_dice {
        let tp: f64 = st.iter().map(|s| s[0]).sum();
        let sp: f64 = st.iter().map(|s| s[1]).sum();
        let sy: f64 = st.iter().map(|s| s[2]).sum();
        vec![(2.0 * tp + SMOOTH, (2.0 * tp + (sp - tp) + (sy - tp)) + SMOOTH)]
    } else {
        st.iter().map(|s| (2.0 * s[0] + SMOOTH, (2.0 * s[0] + (s[1] - s[0]) + (s[2] - s[0])) + SMOOTH)).collect()
    };
    let n_dc = terms.len() as f64;
    let dice_mean = terms.iter().map(|(n, d)| n / d).sum::<f64>() / n_dc;
    let seg_dice = 0.5 * (1.0 - dice_mean);
    let addr = grad.as_mut_ptr() as usize;
    pool().parallel_for(b * nchunks_per, |t| {
        let (s, c) = (t / nchunks_per, t % nchunks_per);
        let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(v));
        let (nom, den) = if batch_dice { terms[0] } else { terms[s] };
        // d seg_dice / d p1 = -0.5/n_dc * (2y·den - nom) / den²
        let k = -0.5 / n_dc / (den * den);
        // SAFETY: each task writes its own voxel range of both channels of sample s.
        let g = unsafe { std::slice::from_raw_parts_mut((addr as *mut f32).add(s * 2 * v), 2 * v) };
        for i in lo..hi {
            let fg = target[s * v + i] > 0;
            let (p1, _) = voxel(logits[s * 2 * v + i] as f64, logits[s * 2 * v + v + i] as f64, fg);
            let y = fg as i32 as f64;
            let dp1 = w_dice * k * (2.0 * y * den - nom);
            // softmax with two channels: dp1/dl1 = p1 p0 = -dp1/dl0
            let dl1 = dp1 * p1 * (1.0 - p1) + w_ce * 0.5 * (p1 - y) / n_vox;
            g[v + i] = dl1 as f32;
            g[i] = (-dl1) as f32;
        }
    });
    (ce, seg_dice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let (b, v) = (2usize, 7usize);
        let logits: Vec<f32> = (0..b * 2 * v).map(|i| (((i * 37) % 11) as f32 - 5.0) * 0.37).collect();
        let target: Vec<i32> = (0..b * v).map(|i| if i % 3 == 0 { 2 } else if i % 5 == 0 { -1 } else { 0 }).collect();
        for batch_dice in [true, false] {
            let mut g = vec![0f32; b * 2 * v];
            seg_loss(&logits, &target, b, batch_dice, 1.0, 1.0, &mut g);
            for k in 0..logits.len() {
                let h = 1e-2f32;
                let (mut a, mut c) = (logits.clone(), logits.clone());
                a[k] += h;
                c[k] -= h;
                let mut tmp = vec![0f32; b * 2 * v];
                let (x1, y1) = seg_loss(&a, &target, b, batch_dice, 1.0, 1.0, &mut tmp);
                let (x2, y2) = seg_loss(&c, &target, b, batch_dice, 1.0, 1.0, &mut tmp);
                let n = ((x1 + y1) - (x2 + y2)) / (2.0 * h as f64);
                assert!((g[k] as f64 - n).abs() < 1e-5 + 1e-3 * n.abs(), "{k}: {} vs {}", g[k], n);
            }
        }
    }
}
