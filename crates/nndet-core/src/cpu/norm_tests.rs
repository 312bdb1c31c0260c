//! Tests of cpu/norm.rs: the fused path at every kernel level against the plain unfused reference
//! (norm then activation) on odd shapes, and the backward against central finite differences in f64.
use super::*;
use crate::cpu::act;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32, shift: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale + shift).collect()
    }
}

fn close(a: &[f32], b: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for i in 0..a.len() {
        assert!((a[i] - b[i]).abs() <= atol + rtol * b[i].abs(), "{what}[{i}]: {} vs reference {}", a[i], b[i]);
    }
}

fn levels() -> Vec<Level> {
    let mut v = vec![Level::Scalar];
    if level() >= Level::Avx2 {
        v.push(Level::Avx2);
    }
    if level() >= Level::Avx512 {
        v.push(Level::Avx512);
    }
    v
}

#[test]
fn fused_equals_reference_on_odd_shapes() {
    let mut r = Rng(7);
    // (n, c, groups, s): instance norm (groups = c), group norm (c/groups channels per group), odd sizes
    for &(n, c, groups, s) in &[(2, 5, 5, 7 * 9 * 11), (1, 48, 3, 5 * 6 * 7), (3, 3, 1, 1001), (1, 20, 20, 1)] {
        let sh = NormShape { n, c, groups, s };
        // a large mean against the spread; not for s = 1 where x*a + b (torch's formula) cancels by design
        let x = r.vec(sh.numel(), 3.0, if s > 1 { 40.0 } else { 0.0 });
        let gamma = r.vec(c, 1.0, 1.0);
        let beta = r.vec(c, 0.5, 0.0);
        let dy = r.vec(sh.numel(), 1.0, 0.1);
        for act in [Act::None, Act::Relu, Act::Leaky(0.01)] {
            // reference: norm, then activation; backward: activation, then norm
            let mut pre = vec![0f32; sh.numel()];
            let (mut m0, mut r0) = (vec![0f32; n * groups], vec![0f32; n * groups]);
            ref_norm_fwd(sh, &x, &gamma, &beta, 1e-5, &mut pre, &mut m0, &mut r0);
            let mut y0 = vec![0f32; sh.numel()];
            act::act_fwd(act, &pre, &mut y0);
            let mut g0 = vec![0f32; sh.numel()];
            act::act_bwd(act, &y0, &dy, &mut g0, false);
            let mut dx0 = vec![0.5f32; sh.numel()];
            let (mut dg0, mut db0) = (vec![0.25f32; c], vec![0.25f32; c]);
            ref_norm_bwd(sh, &x, &g0, &gamma, &m0, &r0, &mut dx0, &mut dg0, &mut db0, true, true);
            for lv in levels() {
                let what = format!("{n}x{c}/{groups}x{s} {act:?} {lv:?}");
                let mut y = vec![0f32; sh.numel()];
                let (mut m, mut rs) = (vec![0f32; n * groups], vec![0f32; n * groups]);
                norm_act_fwd_at(lv, sh, &x, &gamma, &beta, 1e-5, act, &mut y, &mut m, &mut rs);
                close(&m, &m0, 1e-5, 1e-6, &format!("mean {what}"));
                close(&rs, &r0, 0.0, 1e-4, &format!("rstd {what}"));
                close(&y, &y0, 1e-4, 1e-4, &format!("y {what}"));
                let mut dx = vec![0.5f32; sh.numel()];
                let (mut dg, mut db) = (vec![0.25f32; c], vec![0.25f32; c]);
                norm_act_bwd_at(lv, sh, XDx::Split(&x, &mut dx), &dy, &gamma, &beta, &m, &rs, act, &mut dg, &mut db, true, true);
                close(&dx, &dx0, 2e-4, 1e-3, &format!("dx {what}"));
                // in place: dx written over x (no accumulation)
                let mut xd = x.clone();
                let (mut dg2, mut db2) = (vec![0f32; c], vec![0f32; c]);
                norm_act_bwd_at(lv, sh, XDx::InPlace(&mut xd), &dy, &gamma, &beta, &m, &rs, act, &mut dg2, &mut db2, false, false);
                let once: Vec<f32> = dx.iter().map(|&v| v - 0.5).collect();
                close(&xd, &once, 2e-4, 1e-3, &format!("dx in place {what}"));
                close(&dg, &dg0, 2e-3, 1e-4, &format!("dgamma {what}"));
                close(&db, &db0, 2e-3, 1e-4, &format!("dbeta {what}"));
            }
        }
    }
}

/// f64 forward of norm + activation, and the loss sum(w * y).
fn loss64(sh: NormShape, x: &[f64], gamma: &[f64], beta: &[f64], w: &[f32], act: Act) -> f64 {
    let (cpg, s) = (sh.cpg(), sh.s);
    let m = cpg * s;
    let mut loss = 0.0;
    for ng in 0..sh.n * sh.groups {
        let blk = &x[ng * m..(ng + 1) * m];
        let mu = blk.iter().sum::<f64>() / m as f64;
        let var = blk.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / m as f64;
        let r = 1.0 / (var + 1e-5).sqrt();
        for cc in 0..cpg {
            let c = (ng % sh.groups) * cpg + cc;
            for i in 0..s {
                let k = ng * m + cc * s + i;
                let t = (x[k] - mu) * r * gamma[c] + beta[c];
                let y = match act {
                    Act::None => t,
                    Act::Relu => t.max(0.0),
                    Act::Leaky(sl) => if t > 0.0 { t } else { t * sl as f64 },
                };
                loss += w[k] as f64 * y;
            }
        }
    }
    loss
}

#[test]
fn backward_matches_finite_differences() {
    let mut r = Rng(11);
    for &(n, c, groups, s) in &[(2, 3, 3, 2 * 3 * 2), (1, 4, 2, 3 * 2 * 2)] {
        let sh = NormShape { n, c, groups, s };
        let x = r.vec(sh.numel(), 1.0, 0.3);
        let gamma = r.vec(c, 0.5, 1.0);
        let beta = r.vec(c, 0.5, 0.0);
        let w = r.vec(sh.numel(), 1.0, 0.0);
        for act in [Act::None, Act::Relu, Act::Leaky(0.01)] {
            let mut y = vec![0f32; sh.numel()];
            let (mut m, mut rs) = (vec![0f32; n * groups], vec![0f32; n * groups]);
            norm_act_fwd(sh, &x, &gamma, &beta, 1e-5, act, &mut y, &mut m, &mut rs);
            let mut dx = vec![0f32; sh.numel()];
            let (mut dg, mut db) = (vec![0f32; c], vec![0f32; c]);
            norm_act_bwd(sh, XDx::Split(&x, &mut dx), &w, &gamma, &beta, &m, &rs, act, &mut dg, &mut db, false, false);
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let g64: Vec<f64> = gamma.iter().map(|&v| v as f64).collect();
            let b64: Vec<f64> = beta.iter().map(|&v| v as f64).collect();
            let h = 1e-6;
            let fd = |which: usize, i: usize| {
                let (mut xp, mut gp, mut bp) = (x64.clone(), g64.clone(), b64.clone());
                let (mut xm, mut gm, mut bm) = (x64.clone(), g64.clone(), b64.clone());
                match which {
                    0 => { xp[i] += h; xm[i] -= h; }
                    1 => { gp[i] += h; gm[i] -= h; }
                    _ => { bp[i] += h; bm[i] -= h; }
                }
                (loss64(sh, &xp, &gp, &bp, &w, act) - loss64(sh, &xm, &gm, &bm, &w, act)) / (2.0 * h)
            };
            for i in 0..sh.numel() {
                let f = fd(0, i);
                assert!((dx[i] as f64 - f).abs() <= 1e-3 + 1e-3 * f.abs(), "dx[{i}] {act:?}: {} vs fd {f}", dx[i]);
            }
            for i in 0..c {
                let (f1, f2) = (fd(1, i), fd(2, i));
                assert!((dg[i] as f64 - f1).abs() <= 1e-3 + 1e-3 * f1.abs(), "dgamma[{i}] {act:?}: {} vs fd {f1}", dg[i]);
                assert!((db[i] as f64 - f2).abs() <= 1e-3 + 1e-3 * f2.abs(), "dbeta[{i}] {act:?}: {} vs fd {f2}", db[i]);
            }
        }
    }
}
