//! Elementwise layers: ReLU / LeakyReLU forward and backward, add, multiply by a learnable scalar (nnDetection's
//! `Scale`, torch `x * scale` with a 0-dim parameter), and the head-output permute NCS -> N(S·C) that
//! torch's `permute(0, 2, 3, 4, 1).contiguous().view(N, -1, K)` does, with its backward.
//!
//! All work on flat fp32 buffers, chunked over the pool. In-place variants (`*_inplace`) take one buffer.
//! Activation backward reads the activation's OUTPUT y (ReLU and LeakyReLU with slope > 0 keep the sign, so
//! the output decides the branch as the input would): dx = dy * (y > 0 ? 1 : slope).
//! `acc` = true adds into the output (gradients meeting at a fork), false overwrites.

use crate::cpu::norm::Act;
use crate::pool::pool;

const CHUNK: usize = 1 << 15;

/// Run f on disjoint [s, e) chunks of 0..n.
fn chunks<F: Fn(usize, usize) + Sync>(n: usize, f: F) {
    pool().parallel_chunks(n, CHUNK, f);
}

/// # Safety
/// `p` must be valid for writes of [s, e) and no other task may touch that range.
#[inline(always)]
unsafe fn part<'a>(p: usize, s: usize, e: usize) -> &'a mut [f32] {
    std::slice::from_raw_parts_mut((p as *mut f32).add(s), e - s)
}

/// y = act(x).
pub fn act_fwd(act: Act, x: &[f32], y: &mut [f32]) {
    let yp = y.as_mut_ptr() as usize;
    chunks(x.len(), |s, e| {
        // SAFETY: disjoint chunks.
        let o = unsafe { part(yp, s, e) };
        o.iter_mut().zip(&x[s..e]).for_each(|(o, &v)| *o = act.fwd(v));
    });
}

/// y = act(y).
pub fn act_fwd_inplace(act: Act, y: &mut [f32]) {
    let yp = y.as_mut_ptr() as usize;
    chunks(y.len(), |s, e| {
        // SAFETY: disjoint chunks.
        unsafe { part(yp, s, e) }.iter_mut().for_each(|o| *o = act.fwd(*o));
    });
}

/// dx (+)= act'(y) * dy.
pub fn act_bwd(act: Act, y: &[f32], dy: &[f32], dx: &mut [f32], acc: bool) {
    let dp = dx.as_mut_ptr() as usize;
    chunks(y.len(), |s, e| {
        // SAFETY: disjoint chunks.
        let o = unsafe { part(dp, s, e) };
        for (i, o) in o.iter_mut().enumerate() {
            let v = act.bwd(dy[s + i], y[s + i]);
            *o = if acc { *o + v } else { v };
        }
    });
}

/// g = act'(y) * g (overwrites the incoming gradient).
pub fn act_bwd_inplace(act: Act, y: &[f32], g: &mut [f32]) {
    let gp = g.as_mut_ptr() as usize;
    chunks(y.len(), |s, e| {
        // SAFETY: disjoint chunks.
        let o = unsafe { part(gp, s, e) };
        o.iter_mut().zip(&y[s..e]).for_each(|(o, &yv)| *o = act.bwd(*o, yv));
    });
}

/// y = a + b.
pub fn add(a: &[f32], b: &[f32], y: &mut [f32]) {
    let yp = y.as_mut_ptr() as usize;
    chunks(a.len(), |s, e| {
        // SAFETY: disjoint chunks.
        let o = unsafe { part(yp, s, e) };
        for (i, o) in o.iter_mut().enumerate() {
            *o = a[s + i] + b[s + i];
        }
    });
}

/// y += b.
pub fn add_inplace(y: &mut [f32], b: &[f32]) {
    let yp = y.as_mut_ptr() as usize;
    chunks(b.len(), |s, e| {
        // SAFETY: disjoint chunks.
        let o = unsafe { part(yp, s, e) };
        o.iter_mut().zip(&b[s..e]).for_each(|(o, &v)| *o += v);
    });
}

/// y = x * scale.
pub fn scale_fwd(x: &[f32], scale: f32, y: &mut [f32]) {
    let yp = y.as_mut_ptr() as usize;
    chunks(x.len(), |s, e| {
        // SAFETY: disjoint chunks.
        let o = unsafe { part(yp, s, e) };
        o.iter_mut().zip(&x[s..e]).for_each(|(o, &v)| *o = v * scale);
    });
}

/// y *= scale.
pub fn scale_fwd_inplace(y: &mut [f32], scale: f32) {
    let yp = y.as_mut_ptr() as usize;
    chunks(y.len(), |s, e| {
        // SAFETY: disjoint chunks.
        unsafe { part(yp, s, e) }.iter_mut().for_each(|o| *o *= scale);
    });
}

/// sum(dy * x) in f64, chunk partials added in chunk order (deterministic).
pub fn dot(dy: &[f32], x: &[f32]) -> f64 {
    let n = dy.len();
    let nch = n.div_ceil(CHUNK).max(1);
    let mut parts = vec![0f64; nch];
    let pp = parts.as_mut_ptr() as usize;
    pool().parallel_for(nch, |c| {
        let (s, e) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
        let mut acc = 0f64;
        for blk in (s..e).step_by(256) {
            let be = (blk + 256).min(e);
            acc += (blk..be).map(|i| dy[i] * x[i]).sum::<f32>() as f64;
        }
        // SAFETY: task c writes only parts[c].
        unsafe { *(pp as *mut f64).add(c) = acc };
    });
    parts.iter().sum()
}

/// Backward of y = x * scale given x and dy: dx (+)= dy * scale (dx may be `None` when not needed);
/// returns sum(dy * x), the scale's gradient.
pub fn scale_bwd(x: &[f32], dy: &[f32], scale: f32, dx: Option<&mut [f32]>, acc: bool) -> f32 {
    let ds = dot(dy, x) as f32;
    if let Some(dx) = dx {
        let dp = dx.as_mut_ptr() as usize;
        chunks(x.len(), |s, e| {
            // SAFETY: disjoint chunks.
            let o = unsafe { part(dp, s, e) };
            for (i, o) in o.iter_mut().enumerate() {
                let v = dy[s + i] * scale;
                *o = if acc { *o + v } else { v };
            }
        });
    }
    ds
}

/// As `scale_bwd` with dx written over dy (g = g * scale); the scale gradient is taken first.
pub fn scale_bwd_inplace(x: &[f32], g: &mut [f32], scale: f32) -> f32 {
    let ds = dot(g, x) as f32;
    scale_fwd_inplace(g, scale);
    ds
}

/// Geometry of the head permute: x [N][C][S] <-> y rows of `y_stride` values per n, starting at `y_off`,
/// holding S*C values position-major (y[n*y_stride + y_off + s*C + c] = x[n][c][s]).
#[derive(Clone, Copy, Debug)]
pub struct Permute {
    pub n: usize,
    pub c: usize,
    pub s: usize,
    pub y_stride: usize,
    pub y_off: usize,
}

const TILE: usize = 64;

/// y[n, off + s*C + c] (+)= x[n, c, s].
pub fn permute_fwd(p: Permute, x: &[f32], y: &mut [f32], acc: bool) {
    let yp = y.as_mut_ptr() as usize;
    let tiles = p.s.div_ceil(TILE);
    pool().parallel_for(p.n * tiles, |t| {
        let (n, s0) = (t / tiles, (t % tiles) * TILE);
        let s1 = (s0 + TILE).min(p.s);
        let base = n * p.y_stride + p.y_off;
        // SAFETY: task t writes only positions [s0, s1) of image n.
        let o = unsafe { part(yp, base + s0 * p.c, base + s1 * p.c) };
        for c in 0..p.c {
            let xr = &x[(n * p.c + c) * p.s..];
            for s in s0..s1 {
                let k = (s - s0) * p.c + c;
                o[k] = if acc { o[k] + xr[s] } else { xr[s] };
            }
        }
    });
}

/// dx[n, c, s] (+)= dy[n, off + s*C + c].
pub fn permute_bwd(p: Permute, dy: &[f32], dx: &mut [f32], acc: bool) {
    let dp = dx.as_mut_ptr() as usize;
    pool().parallel_for(p.n * p.c, |nc| {
        let n = nc / p.c;
        let c = nc % p.c;
        // SAFETY: task nc writes only dx[nc*S..(nc+1)*S].
        let o = unsafe { part(dp, nc * p.s, (nc + 1) * p.s) };
        let base = n * p.y_stride + p.y_off + c;
        for (s, o) in o.iter_mut().enumerate() {
            let v = dy[base + s * p.c];
            *o = if acc { *o + v } else { v };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn act_forward_backward_and_inplace() {
        let x: Vec<f32> = (0..100_003).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        for act in [Act::Relu, Act::Leaky(0.01)] {
            let mut y = vec![0f32; x.len()];
            act_fwd(act, &x, &mut y);
            let mut z = x.clone();
            act_fwd_inplace(act, &mut z);
            assert_eq!(y, z);
            for i in 0..x.len() {
                let want = if x[i] > 0.0 { x[i] } else if act == Act::Relu { 0.0 } else { x[i] * 0.01 };
                assert_eq!(y[i], want);
            }
            let dy: Vec<f32> = (0..x.len()).map(|i| (i % 13) as f32 - 6.0).collect();
            let mut dx = vec![1f32; x.len()];
            act_bwd(act, &y, &dy, &mut dx, true);
            let mut g = dy.clone();
            act_bwd_inplace(act, &y, &mut g);
            for i in 0..x.len() {
                let d = if x[i] > 0.0 { dy[i] } else if act == Act::Relu { 0.0 } else { dy[i] * 0.01 };
                assert_eq!(g[i], d);
                assert_eq!(dx[i], 1.0 + d);
            }
        }
    }

    #[test]
    fn scale_and_add() {
        let x: Vec<f32> = (0..70_001).map(|i| (i % 17) as f32 * 0.25 - 2.0).collect();
        let dy: Vec<f32> = (0..x.len()).map(|i| (i % 5) as f32 - 2.0).collect();
        let mut y = vec![0f32; x.len()];
        scale_fwd(&x, 1.5, &mut y);
        assert!(y.iter().zip(&x).all(|(&a, &b)| a == b * 1.5));
        let mut dx = vec![0f32; x.len()];
        let ds = scale_bwd(&x, &dy, 1.5, Some(&mut dx), false);
        let want: f64 = x.iter().zip(&dy).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!((ds as f64 - want).abs() <= 1e-4 * want.abs().max(1.0), "{ds} vs {want}");
        let mut g = dy.clone();
        assert_eq!(scale_bwd_inplace(&x, &mut g, 1.5), ds);
        assert_eq!(g, dx);
        let mut s = vec![0f32; x.len()];
        add(&x, &dy, &mut s);
        let mut t = x.clone();
        add_inplace(&mut t, &dy);
        assert_eq!(s, t);
        assert!(s.iter().enumerate().all(|(i, &v)| v == x[i] + dy[i]));
    }

    #[test]
    fn permute_roundtrip_with_offsets() {
        let p = Permute { n: 2, c: 5, s: 7 * 9 * 11, y_stride: 5 * 693 + 13, y_off: 7 };
        let x: Vec<f32> = (0..p.n * p.c * p.s).map(|i| i as f32).collect();
        let mut y = vec![-1f32; p.n * p.y_stride];
        permute_fwd(p, &x, &mut y, false);
        for n in 0..p.n {
            for c in 0..p.c {
                for s in 0..p.s {
                    assert_eq!(y[n * p.y_stride + p.y_off + s * p.c + c], x[(n * p.c + c) * p.s + s]);
                }
            }
            assert_eq!(y[n * p.y_stride], -1.0);
        }
        let mut back = vec![1f32; x.len()];
        permute_bwd(p, &y, &mut back, true);
        assert!(back.iter().zip(&x).all(|(&a, &b)| a == b + 1.0));
    }
}
