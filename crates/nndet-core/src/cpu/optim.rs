//! SGD with momentum (Nesterov optional) and masked weight decay over one flat parameter buffer, and the
//! running parameter average used by SWA. Mirrors torch.optim.SGD (torch 1.13, single-tensor path,
//! dampening 0) and torch.optim.swa_utils.AveragedModel's default avg_fn.
//!
//! torch.optim.SGD.step, per element (p param, g grad, b momentum buffer, wd weight decay, mu momentum):
//!   d = g + wd * p                      (only where weight decay applies; here mask[i] != 0)
//!   b = d              on the first step (torch clones d into a new buffer)
//!   b = mu * b + d     afterwards        (dampening 0: (1 - dampening) * d = d)
//!   d = d + mu * b     if nesterov, else d = b
//!   p = p - lr * d
//! NOTE: the first step needs no flag: with b initialised to zero, mu*0 + d == d exactly. torch computes
//! `a.add(b, alpha=c)` as a fused multiply-add (ATen vec::fmadd); mul_add does the same here.
//!
//! Average (SWA): avg = avg + (p - avg) / (n_averaged + 1); with n_averaged = 0 the parameters are copied.
//! Shapes: params, grads, momentum, avg: [P]; mask: [P] bytes (1 = decay, 0 = no decay, e.g. norm affine).

use crate::pool::pool;

const CHUNK: usize = 1 << 15;

/// Hyper-parameters of one SGD step.
#[derive(Clone, Copy, Debug)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

/// One in-place SGD step over the flat buffers. Caller checks that lengths agree.
pub fn sgd_step(h: Sgd, params: &mut [f32], grads: &[f32], momentum: &mut [f32], mask: &[u8]) {
    let (pp, mp) = (params.as_mut_ptr() as usize, momentum.as_mut_ptr() as usize);
    pool().parallel_chunks(params.len(), CHUNK, |s, e| {
        // SAFETY: disjoint chunks of params and momentum.
        let (p, b) = unsafe {
            (
                std::slice::from_raw_parts_mut((pp as *mut f32).add(s), e - s),
                std::slice::from_raw_parts_mut((mp as *mut f32).add(s), e - s),
            )
        };
        for i in 0..e - s {
            let mut d = grads[s + i];
            if h.weight_decay != 0.0 && mask[s + i] != 0 {
                d = h.weight_decay.mul_add(p[i], d);
            }
            if h.momentum != 0.0 {
                b[i] = b[i] * h.momentum + d;
                d = if h.nesterov { h.momentum.mul_add(b[i], d) } else { b[i] };
            }
            p[i] = (-h.lr).mul_add(d, p[i]);
        }
    });
}

/// avg = avg + (p - avg) / (n_averaged + 1); a copy when n_averaged == 0.
pub fn average_update(avg: &mut [f32], params: &[f32], n_averaged: u64) {
    let ap = avg.as_mut_ptr() as usize;
    let k = (n_averaged + 1) as f32;
    pool().parallel_chunks(params.len(), CHUNK, |s, e| {
        // SAFETY: disjoint chunks of avg.
        let a = unsafe { std::slice::from_raw_parts_mut((ap as *mut f32).add(s), e - s) };
        for i in 0..e - s {
            a[i] = if n_averaged == 0 { params[s + i] } else { a[i] + (params[s + i] - a[i]) / k };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torch's rule written out literally, one element at a time, with an explicit first-step flag.
    fn torch_rule(h: Sgd, p: &mut [f32], g: &[f32], b: &mut [Option<f32>], mask: &[u8]) {
        for i in 0..p.len() {
            let mut d = g[i];
            if h.weight_decay != 0.0 && mask[i] != 0 {
                d = h.weight_decay.mul_add(p[i], d);
            }
            let nb = match b[i] {
                None => d,
                Some(old) => old * h.momentum + d,
            };
            b[i] = Some(nb);
            d = if h.nesterov { h.momentum.mul_add(nb, d) } else { nb };
            p[i] = (-h.lr).mul_add(d, p[i]);
        }
    }

    #[test]
    fn sgd_matches_the_literal_rule_over_steps() {
        let n = 100_001;
        let h = Sgd { lr: 0.01, momentum: 0.9, weight_decay: 3e-5, nesterov: true };
        let mut p: Vec<f32> = (0..n).map(|i| ((i * 31 % 97) as f32 - 48.0) / 10.0).collect();
        let mask: Vec<u8> = (0..n).map(|i| (i % 3 != 0) as u8).collect();
        let mut q = p.clone();
        let mut m = vec![0f32; n];
        let mut b: Vec<Option<f32>> = vec![None; n];
        for step in 0..3 {
            let g: Vec<f32> = (0..n).map(|i| ((i * 7 + step * 5) % 23) as f32 / 11.0 - 1.0).collect();
            sgd_step(h, &mut p, &g, &mut m, &mask);
            torch_rule(h, &mut q, &g, &mut b, &mask);
            assert_eq!(p, q, "step {step}");
        }
    }

    #[test]
    fn average_is_the_running_mean() {
        let snaps: Vec<Vec<f32>> = (0..4).map(|k| (0..1000).map(|i| (i * (k + 1)) as f32 * 0.5).collect()).collect();
        let mut avg = vec![7f32; 1000];
        for (k, s) in snaps.iter().enumerate() {
            average_update(&mut avg, s, k as u64);
        }
        for i in 0..1000 {
            let mean = snaps.iter().map(|s| s[i] as f64).sum::<f64>() / 4.0;
            assert!((avg[i] as f64 - mean).abs() <= 1e-5 * mean.abs().max(1.0));
        }
    }
}
