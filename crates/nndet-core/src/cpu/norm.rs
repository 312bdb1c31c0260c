//! Group normalisation (InstanceNorm3d = one group per channel, GroupNorm = C/16 groups), affine, with an
//! optional fused activation, forward and backward. Mirrors torch.nn.InstanceNorm3d(affine=True,
//! track_running_stats=False) and torch.nn.GroupNorm(G, C, affine=True) in training mode.
//!
//! Shapes (NCDHW, contiguous, fp32): x, y [N][C][S] with S = D*H*W; gamma, beta [C]; mean, rstd [N][G]
//! (saved by the forward for the backward). A group is `C/G` consecutive channels: one contiguous block of
//! `C/G * S` values per (n, g).
//!
//! Forward: y = act(x*a_c + b_c) with a_c = rstd*gamma[c], b_c = beta[c] - mean*a_c (PyTorch's formula),
//! rstd = 1/sqrt(var + eps), var biased. Backward, with g = dy * act'(pre), xhat = (x - mean)*rstd, M = C/G*S:
//!   dgamma[c] += sum g*xhat, dbeta[c] += sum g,
//!   dx = rstd * (g*gamma[c] - mean_group(g*gamma) - xhat * mean_group(g*gamma*xhat)).
//!
//! NOTE: the fused backward does not read y: it recomputes the pre-activation x*a_c + b_c (bit-identical to
//! the forward) for the activation's mask. So the caller may reuse y's buffer for dy, and dx may be x's
//! buffer (in place): the graph keeps one buffer per tensor for value and then gradient.
//!
//! Two paths: `ref_*` (plain, f64, unfused: the test oracle) and `norm_act_*` (fused, one task per (n, g)
//! on the pool, vectorised inner loops for AVX-512 / AVX2 chosen by cpu::features::level()).

use crate::cpu::features::{level, Level};
use crate::pool::pool;

/// Activation fused after the norm (forward) / before it (backward).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    Leaky(f32),
}

impl Act {
    #[inline(always)]
    pub fn fwd(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => if v > 0.0 { v } else { 0.0 },
            Act::Leaky(s) => if v > 0.0 { v } else { v * s },
        }
    }
    /// Gradient through the activation, from its output y.
    #[inline(always)]
    pub fn bwd(self, dy: f32, y: f32) -> f32 {
        match self {
            Act::None => dy,
            Act::Relu => if y > 0.0 { dy } else { 0.0 },
            Act::Leaky(s) => if y > 0.0 { dy } else { dy * s },
        }
    }
}

/// Geometry of one norm call.
#[derive(Clone, Copy, Debug)]
pub struct NormShape {
    pub n: usize,
    pub c: usize,
    pub groups: usize,
    pub s: usize,
}

impl NormShape {
    pub fn cpg(&self) -> usize {
        self.c / self.groups
    }
    pub fn numel(&self) -> usize {
        self.n * self.c * self.s
    }
}

/// Plain reference forward (no activation): y = (x - mean)*rstd*gamma + beta, statistics in f64 two-pass.
pub fn ref_norm_fwd(sh: NormShape, x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32], mean: &mut [f32], rstd: &mut [f32]) {
    let (cpg, s) = (sh.cpg(), sh.s);
    let m = cpg * s;
    for ng in 0..sh.n * sh.groups {
        let blk = &x[ng * m..(ng + 1) * m];
        let mu = blk.iter().map(|&v| v as f64).sum::<f64>() / m as f64;
        let var = blk.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / m as f64;
        let r = 1.0 / (var + eps as f64).sqrt();
        mean[ng] = mu as f32;
        rstd[ng] = r as f32;
        let g = ng % sh.groups;
        for cc in 0..cpg {
            let c = g * cpg + cc;
            for i in 0..s {
                let k = ng * m + cc * s + i;
                y[k] = ((x[k] as f64 - mu) * r * gamma[c] as f64 + beta[c] as f64) as f32;
            }
        }
    }
}

/// Plain reference backward (no activation; `dy` is the gradient at the norm's output). Overwrites or adds
/// (`acc_dx`, `acc_dp`) into dx and dgamma/dbeta.
#[allow(clippy::too_many_arguments)]
pub fn ref_norm_bwd(
    sh: NormShape, x: &[f32], dy: &[f32], gamma: &[f32], mean: &[f32], rstd: &[f32],
    dx: &mut [f32], dgamma: &mut [f32], dbeta: &mut [f32], acc_dx: bool, acc_dp: bool,
) {
    let (cpg, s) = (sh.cpg(), sh.s);
    let m = cpg * s;
    let mut dg = vec![0f64; sh.c];
    let mut db = vec![0f64; sh.c];
    for ng in 0..sh.n * sh.groups {
        let g = ng % sh.groups;
        let (mu, r) = (mean[ng] as f64, rstd[ng] as f64);
        let (mut m1, mut m2) = (0f64, 0f64);
        for cc in 0..cpg {
            let c = g * cpg + cc;
            for i in 0..s {
                let k = ng * m + cc * s + i;
                let xh = (x[k] as f64 - mu) * r;
                let d = dy[k] as f64;
                dg[c] += d * xh;
                db[c] += d;
                m1 += d * gamma[c] as f64;
                m2 += d * gamma[c] as f64 * xh;
            }
        }
        m1 /= m as f64;
        m2 /= m as f64;
        for cc in 0..cpg {
            let c = g * cpg + cc;
            for i in 0..s {
                let k = ng * m + cc * s + i;
                let xh = (x[k] as f64 - mu) * r;
                let v = (r * (dy[k] as f64 * gamma[c] as f64 - m1 - xh * m2)) as f32;
                dx[k] = if acc_dx { dx[k] + v } else { v };
            }
        }
    }
    for c in 0..sh.c {
        dgamma[c] = if acc_dp { dgamma[c] + dg[c] as f32 } else { dg[c] as f32 };
        dbeta[c] = if acc_dp { dbeta[c] + db[c] as f32 } else { db[c] as f32 };
    }
}

const LANES: usize = 16;
const FLUSH: usize = 1024;

/// Shifted sums of one contiguous block: (sum(v - k), sum((v - k)^2)) in f64, f32 lane partials flushed
/// every FLUSH elements.
#[inline(always)]
fn shifted_sums(v: &[f32], k: f32) -> (f64, f64) {
    let (mut s1, mut s2) = (0f64, 0f64);
    for blk in v.chunks(FLUSH) {
        let mut a = [0f32; LANES];
        let mut b = [0f32; LANES];
        let mut it = blk.chunks_exact(LANES);
        for ch in &mut it {
            for l in 0..LANES {
                let d = ch[l] - k;
                a[l] += d;
                b[l] += d * d;
            }
        }
        for &x in it.remainder() {
            let d = x - k;
            s1 += d as f64;
            s2 += (d * d) as f64;
        }
        s1 += a.iter().map(|&t| t as f64).sum::<f64>();
        s2 += b.iter().map(|&t| t as f64).sum::<f64>();
    }
    (s1, s2)
}

/// y[i] = act(x[i]*a + b) over one channel.
#[inline(always)]
fn affine_act(x: &[f32], y: &mut [f32], a: f32, b: f32, act: Act) {
    match act {
        Act::None => x.iter().zip(y.iter_mut()).for_each(|(&v, o)| *o = v * a + b),
        Act::Relu => x.iter().zip(y.iter_mut()).for_each(|(&v, o)| *o = (v * a + b).max(0.0)),
        Act::Leaky(s) => x.iter().zip(y.iter_mut()).for_each(|(&v, o)| {
            let t = v * a + b;
            *o = if t > 0.0 { t } else { t * s }
        }),
    }
}

/// Per channel of the backward: (sum g, sum g*(x - mean)) with g = act'(x*a + b)*dy.
#[inline(always)]
fn bwd_sums(x: &[f32], dy: &[f32], a: f32, b: f32, mu: f32, act: Act) -> (f64, f64) {
    let (mut s1, mut s2) = (0f64, 0f64);
    let n = x.len();
    let mut i = 0;
    while i < n {
        let e = (i + FLUSH).min(n);
        let mut sa = [0f32; LANES];
        let mut sb = [0f32; LANES];
        let full = i + (e - i) / LANES * LANES;
        let mut j = i;
        while j < full {
            for l in 0..LANES {
                let g = act.bwd(dy[j + l], x[j + l] * a + b);
                sa[l] += g;
                sb[l] += g * (x[j + l] - mu);
            }
            j += LANES;
        }
        for j in full..e {
            let g = act.bwd(dy[j], x[j] * a + b);
            s1 += g as f64;
            s2 += (g * (x[j] - mu)) as f64;
        }
        s1 += sa.iter().map(|&t| t as f64).sum::<f64>();
        s2 += sb.iter().map(|&t| t as f64).sum::<f64>();
        i = e;
    }
    (s1, s2)
}

/// dx[i] (+)= act'(x*pa + pb)*dy * a + x*bb + cc over one channel.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bwd_apply(x: &[f32], dy: &[f32], dx: &mut [f32], pa: f32, pb: f32, a: f32, bb: f32, cc: f32, act: Act, acc: bool) {
    for i in 0..x.len() {
        let v = act.bwd(dy[i], x[i] * pa + pb) * a + (x[i] * bb + cc);
        dx[i] = if acc { dx[i] + v } else { v };
    }
}

/// As bwd_apply with dx written over x (no accumulation).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bwd_apply_inplace(xdx: &mut [f32], dy: &[f32], pa: f32, pb: f32, a: f32, bb: f32, cc: f32, act: Act) {
    for i in 0..xdx.len() {
        let x = xdx[i];
        xdx[i] = act.bwd(dy[i], x * pa + pb) * a + (x * bb + cc);
    }
}

macro_rules! dispatch {
    ($name:ident, $inner:ident, ($($arg:ident : $t:ty),*) -> $ret:ty) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::*;
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
            pub unsafe fn avx512($($arg: $t),*) -> $ret { $inner($($arg),*) }
            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn avx2($($arg: $t),*) -> $ret { $inner($($arg),*) }
        }
        #[inline(always)]
        fn $name(lv: Level, $($arg: $t),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `lv` comes from features::level(), which checked the CPU has these features.
            unsafe {
                match lv {
                    Level::Avx512 => return $name::avx512($($arg),*),
                    Level::Avx2 => return $name::avx2($($arg),*),
                    Level::Scalar => {}
                }
            }
            $inner($($arg),*)
        }
    };
}

dispatch!(v_shifted_sums, shifted_sums, (v: &[f32], k: f32) -> (f64, f64));
dispatch!(v_affine_act, affine_act, (x: &[f32], y: &mut [f32], a: f32, b: f32, act: Act) -> ());
dispatch!(v_bwd_sums, bwd_sums, (x: &[f32], dy: &[f32], a: f32, b: f32, mu: f32, act: Act) -> (f64, f64));
dispatch!(v_bwd_apply, bwd_apply, (x: &[f32], dy: &[f32], dx: &mut [f32], pa: f32, pb: f32, a: f32, bb: f32, cc: f32, act: Act, acc: bool) -> ());
dispatch!(v_bwd_apply_inplace, bwd_apply_inplace, (xdx: &mut [f32], dy: &[f32], pa: f32, pb: f32, a: f32, bb: f32, cc: f32, act: Act) -> ());

/// Fused forward: statistics, normalise, affine and activation in one task per (n, g). Caller checks sizes.
#[allow(clippy::too_many_arguments)]
pub fn norm_act_fwd(sh: NormShape, x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, act: Act, y: &mut [f32], mean: &mut [f32], rstd: &mut [f32]) {
    norm_act_fwd_at(level(), sh, x, gamma, beta, eps, act, y, mean, rstd)
}

/// `norm_act_fwd` at a given kernel level (tests compare levels).
#[allow(clippy::too_many_arguments)]
pub fn norm_act_fwd_at(lv: Level, sh: NormShape, x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, act: Act, y: &mut [f32], mean: &mut [f32], rstd: &mut [f32]) {
    let (cpg, s) = (sh.cpg(), sh.s);
    let m = cpg * s;
    let (yp, mp, rp) = (y.as_mut_ptr() as usize, mean.as_mut_ptr() as usize, rstd.as_mut_ptr() as usize);
    pool().parallel_for(sh.n * sh.groups, |ng| {
        let blk = &x[ng * m..(ng + 1) * m];
        // NOTE: shifting by the block's first value keeps the one-pass variance exact enough even when the
        // mean is large against the spread (the plain E[x^2] - E[x]^2 would cancel).
        let k = blk[0];
        let (s1, s2) = v_shifted_sums(lv, blk, k);
        let d = s1 / m as f64;
        let var = (s2 / m as f64 - d * d).max(0.0);
        let mu = (k as f64 + d) as f32;
        let r = (1.0 / (var + eps as f64).sqrt()) as f32;
        // SAFETY: task ng writes only mean[ng], rstd[ng] and y[ng*m..(ng+1)*m].
        let yb = unsafe {
            *(mp as *mut f32).add(ng) = mu;
            *(rp as *mut f32).add(ng) = r;
            std::slice::from_raw_parts_mut((yp as *mut f32).add(ng * m), m)
        };
        let g = ng % sh.groups;
        for cc in 0..cpg {
            let c = g * cpg + cc;
            let a = r * gamma[c];
            let b = beta[c] - mu * a;
            v_affine_act(lv, &blk[cc * s..(cc + 1) * s], &mut yb[cc * s..(cc + 1) * s], a, b, act);
        }
    });
}

/// Where the fused backward reads x and writes dx: two buffers, or one (dx over x, no accumulation).
pub enum XDx<'a> {
    Split(&'a [f32], &'a mut [f32]),
    InPlace(&'a mut [f32]),
}

/// Fused backward through activation and norm: `x` is the norm's input, `dy` the gradient at the
/// activation's output; beta is needed to recompute the pre-activation.
#[allow(clippy::too_many_arguments)]
pub fn norm_act_bwd(
    sh: NormShape, xdx: XDx, dy: &[f32], gamma: &[f32], beta: &[f32], mean: &[f32], rstd: &[f32], act: Act,
    dgamma: &mut [f32], dbeta: &mut [f32], acc_dx: bool, acc_dp: bool,
) {
    norm_act_bwd_at(level(), sh, xdx, dy, gamma, beta, mean, rstd, act, dgamma, dbeta, acc_dx, acc_dp)
}

/// `norm_act_bwd` at a given kernel level (tests compare levels).
#[allow(clippy::too_many_arguments)]
pub fn norm_act_bwd_at(
    lv: Level, sh: NormShape, xdx: XDx, dy: &[f32], gamma: &[f32], beta: &[f32], mean: &[f32], rstd: &[f32],
    act: Act, dgamma: &mut [f32], dbeta: &mut [f32], acc_dx: bool, acc_dp: bool,
) {
    let (cpg, s) = (sh.cpg(), sh.s);
    let m = cpg * s;
    let (xp, dxp, inplace) = match xdx {
        XDx::Split(x, dx) => (x.as_ptr() as usize, dx.as_mut_ptr() as usize, false),
        XDx::InPlace(b) => (b.as_ptr() as usize, b.as_mut_ptr() as usize, true),
    };
    // per-(n, c) partial sums, reduced over n in a fixed order afterwards (deterministic)
    let mut part = vec![0f64; sh.n * sh.c * 2];
    let pp = part.as_mut_ptr() as usize;
    pool().parallel_for(sh.n * sh.groups, |ng| {
        let (n, g) = (ng / sh.groups, ng % sh.groups);
        let (mu, r) = (mean[ng], rstd[ng]);
        let (mut m1, mut m2) = (0f64, 0f64);
        // SAFETY: task ng reads and writes only block ng of x/dx (and its own entries of part).
        let xb = unsafe { std::slice::from_raw_parts((xp as *const f32).add(ng * m), m) };
        for cc in 0..cpg {
            let c = g * cpg + cc;
            let (o, pa) = (ng * m + cc * s, r * gamma[c]);
            let pb = beta[c] - mu * pa;
            let (sg, sgx) = v_bwd_sums(lv, &xb[cc * s..(cc + 1) * s], &dy[o..o + s], pa, pb, mu, act);
            let sgxh = sgx * r as f64;
            // SAFETY: see above.
            unsafe {
                *(pp as *mut f64).add((n * sh.c + c) * 2) = sgxh;
                *(pp as *mut f64).add((n * sh.c + c) * 2 + 1) = sg;
            }
            m1 += sg * gamma[c] as f64;
            m2 += sgxh * gamma[c] as f64;
        }
        m1 /= m as f64;
        m2 /= m as f64;
        let (rd, mud) = (r as f64, mu as f64);
        let bb = (-rd * rd * m2) as f32;
        let cc0 = (-rd * m1 + rd * rd * m2 * mud) as f32;
        for cc in 0..cpg {
            let c = g * cpg + cc;
            let (o, pa) = (ng * m + cc * s, r * gamma[c]);
            let pb = beta[c] - mu * pa;
            // SAFETY: see above; the x slice is not used past this point when dx is x.
            let dxb = unsafe { std::slice::from_raw_parts_mut((dxp as *mut f32).add(o), s) };
            if inplace {
                v_bwd_apply_inplace(lv, dxb, &dy[o..o + s], pa, pb, pa, bb, cc0, act);
            } else {
                v_bwd_apply(lv, &xb[cc * s..(cc + 1) * s], &dy[o..o + s], dxb, pa, pb, pa, bb, cc0, act, acc_dx);
            }
        }
    });
    for c in 0..sh.c {
        let (mut dg, mut db) = (0f64, 0f64);
        for n in 0..sh.n {
            dg += part[(n * sh.c + c) * 2];
            db += part[(n * sh.c + c) * 2 + 1];
        }
        dgamma[c] = if acc_dp { dgamma[c] + dg as f32 } else { dg as f32 };
        dbeta[c] = if acc_dp { dbeta[c] + db as f32 } else { db as f32 };
    }
}

#[cfg(test)]
#[path = "norm_tests.rs"]
mod tests;
