//! The forward-type kernel for small planes at stride 1 in (h, w): output channels in vectors (CV vectors
//! of L channels) x NP positions along one output row, summed over (tap, input channel) as broadcast input
//! value x weight vector. Unlike plane.rs, a tap that falls off the row is skipped per position rather than
//! multiplied by masked zeros, which matters when W is small (an 8-wide plane loses 1/8 of the work on
//! every w-shifted tap there). Inputs are read in place (PyTorch's layout); weights are packed like
//! plane.rs with a group width of CV*L. Drivers: `corr` (Conv3d forward) and `adj` (Conv3d backward-data)
//! at stride 1 in h and w; d may have any stride.

use super::layout::P;
use super::reference::Geom;
use super::simd::{run_tasks, Simd, Task};
use crate::cpu::features::Level;

/// Positions per tile along a row.
pub const NP: usize = 8;

/// Vectors of output channels per tile at each level.
pub fn cv(level: Level) -> usize {
    match level {
        Level::Avx512 | Level::Avx2 => 2,
        Level::Scalar => 8,
    }
}

#[derive(Clone, Copy)]
pub struct Pass {
    pub g: Geom,
    pub level: Level,
    pub corr: bool,
    pub src: P,
    pub wpk: P,
    pub out: P,
    pub bias: P,
    pub has_bias: bool,
    pub acc: bool,
    /// output channels per group (CV * lanes)
    pub gw: usize,
}

impl Pass {
    fn c_out(&self) -> usize {
        if self.corr { self.g.c_lo } else { self.g.c_hi }
    }
    fn c_red(&self) -> usize {
        if self.corr { self.g.c_hi } else { self.g.c_lo }
    }
}

struct Job<const CV: usize> {
    p: Pass,
    chunk: usize,
    chunks: usize,
}

#[derive(Clone, Copy, Default)]
struct RowTap {
    /// source offset of channel 0 at w = 0 of this tap's row, plus the w shift
    off: isize,
    dw: isize,
    w: usize,
}

impl<const CV: usize> Task for Job<CV> {
    #[inline(always)]
    unsafe fn exec<S: Simd>(&self, i: usize) {
        let p = &self.p;
        let g = &p.g;
        // output d, h sizes (== source sizes in h, w: stride 1 there)
        let (od_n, oh_n, w_n) = if p.corr { (g.lo[0], g.lo[1], g.lo[2]) } else { (g.hi[0], g.hi[1], g.hi[2]) };
        let oh = i % oh_n;
        let od = (i / oh_n) % od_n;
        let ch = (i / oh_n / od_n) % self.chunks;
        let n = i / oh_n / od_n / self.chunks;
        let (c_out, c_red) = (p.c_out(), p.c_red());
        let gw = CV * S::L;
        let groups = c_out.div_ceil(gw);
        let (g0, g1) = (ch * self.chunk, ((ch + 1) * self.chunk).min(groups));
        let plane = g.lo[1] * g.lo[2];
        let src_d = if p.corr { g.hi[0] } else { g.lo[0] };
        let cstride = src_d * plane;
        let src = (p.src.f() as *const f32).add(n * c_red * cstride);
        let ntaps = g.k[0] * g.k[1] * g.k[2];
        let mut taps = [RowTap::default(); 27];
        let mut nt = 0;
        for td in 0..g.k[0] {
            // source d index: corr o*s + q; adj (o + p - t)/s when divisible
            let sd = if p.corr {
                let v = (od * g.s[0] + td) as isize - g.p[0] as isize;
                if v < 0 || v as usize >= src_d { continue; }
                v as usize
            } else {
                let q = (od + g.p[0]) as isize - td as isize;
                if q < 0 || !(q as usize).is_multiple_of(g.s[0]) || q as usize / g.s[0] >= src_d { continue; }
                q as usize / g.s[0]
            };
            for th in 0..g.k[1] {
                let q = th as isize - g.p[1] as isize;
                let sh = oh as isize + if p.corr { q } else { -q };
                if sh < 0 || sh as usize >= g.lo[1] {
                    continue;
                }
                for tw in 0..g.k[2] {
                    let q = tw as isize - g.p[2] as isize;
                    let dw = if p.corr { q } else { -q };
                    let off = (sd * plane + sh as usize * w_n) as isize;
                    taps[nt] = RowTap { off, dw, w: (td * g.k[1] + th) * g.k[2] + tw };
                    nt += 1;
                }
            }
        }
        let taps = &taps[..nt];
        for w0 in (0..w_n).step_by(NP) {
            let np = (w_n - w0).min(NP);
            for cg in g0..g1 {
                let wg = (p.wpk.f() as *const f32).add(cg * ntaps * c_red * gw);
                let mut acc = [[S::zero(); CV]; NP];
                for t in taps {
                    // positions of this tile whose source w0 + q + dw is inside the row
                    let lo = (-(w0 as isize) - t.dw).clamp(0, np as isize) as usize;
                    let hi = (w_n as isize - w0 as isize - t.dw).clamp(0, np as isize) as usize;
                    let xp = src.wrapping_offset(t.off + w0 as isize + t.dw);
                    let wp = wg.add(t.w * c_red * gw);
                    let a = (xp, wp, c_red, cstride, gw);
                    // NOTE: the common ranges get their own unrolled loop (no per-position test)
                    match (lo, NP - hi) {
                        (0, 0) => tap_run::<S, CV, 0, 0>(&mut acc, a),
                        (1, 0) => tap_run::<S, CV, 1, 0>(&mut acc, a),
                        (0, 1) => tap_run::<S, CV, 0, 1>(&mut acc, a),
                        (1, 1) => tap_run::<S, CV, 1, 1>(&mut acc, a),
                        _ => tap_range::<S, CV>(&mut acc, a, lo, hi),
                    }
                }
                // epilogue: channels-in-vector -> the plain layout, one row segment per channel
                let mut buf = [[[0f32; 16]; CV]; NP];
                for q in 0..NP {
                    for c in 0..CV {
                        S::store(buf[q][c].as_mut_ptr(), acc[q][c]);
                    }
                }
                for c in 0..CV {
                    for l in 0..S::L {
                        let co = cg * gw + c * S::L + l;
                        if co >= c_out {
                            break;
                        }
                        let b = if p.has_bias { *p.bias.f().add(co) } else { 0.0 };
                        let dst = p.out.f().add((((n * c_out + co) * od_n + od) * oh_n + oh) * w_n + w0);
                        for (q, bq) in buf.iter().enumerate().take(np) {
                            let v = bq[c][l] + b;
                            *dst.add(q) = if p.acc { *dst.add(q) + v } else { v };
                        }
                    }
                }
            }
        }
    }
}

type TapArgs = (*const f32, *const f32, usize, usize, usize);

/// acc[q] += sum_r x[r][q] * w[r] for q in A..NP-B (x: channel r at xp + r*cstride, w: gw floats per r).
#[inline(always)]
unsafe fn tap_run<S: Simd, const CV: usize, const A: usize, const B: usize>(
    acc: &mut [[S::V; CV]; NP],
    (mut xp, mut wp, c_red, cstride, gw): TapArgs,
) {
    for _ in 0..c_red {
        let mut wv = [S::zero(); CV];
        for (c, v) in wv.iter_mut().enumerate() {
            *v = S::load(wp.add(c * S::L));
        }
        for q in A..NP - B {
            let xb = S::set1(*xp.wrapping_add(q));
            for c in 0..CV {
                acc[q][c] = S::fma(xb, wv[c], acc[q][c]);
            }
        }
        xp = xp.wrapping_add(cstride);
        wp = wp.add(gw);
    }
}

/// `tap_run` for any range lo..hi (row tails).
#[inline(always)]
unsafe fn tap_range<S: Simd, const CV: usize>(acc: &mut [[S::V; CV]; NP], (mut xp, mut wp, c_red, cstride, gw): TapArgs, lo: usize, hi: usize) {
    for _ in 0..c_red {
        let mut wv = [S::zero(); CV];
        for (c, v) in wv.iter_mut().enumerate() {
            *v = S::load(wp.add(c * S::L));
        }
        for q in lo..hi {
            let xb = S::set1(*xp.wrapping_add(q));
            for c in 0..CV {
                acc[q][c] = S::fma(xb, wv[c], acc[q][c]);
            }
        }
        xp = xp.wrapping_add(cstride);
        wp = wp.add(gw);
    }
}

/// Run a corr or adj pass at stride 1 in h and w (weights packed with group width `p.gw`).
pub fn run(p: Pass) {
    let groups = p.c_out().div_ceil(p.gw);
    let ntaps = p.g.k[0] * p.g.k[1] * p.g.k[2];
    let per_group = ntaps * p.c_red() * p.gw * 4;
    let chunk = (256 * 1024 / per_group.max(1)).clamp(1, groups);
    let chunks = groups.div_ceil(chunk);
    let (od_n, oh_n) = if p.corr { (p.g.lo[0], p.g.lo[1]) } else { (p.g.hi[0], p.g.hi[1]) };
    let n = p.g.n * chunks * od_n * oh_n;
    match cv(p.level) {
        2 => run_tasks(p.level, n, &Job::<2> { p, chunk, chunks }),
        8 => run_tasks(p.level, n, &Job::<8> { p, chunk, chunks }),
        c => unreachable!("row tile with {c} channel vectors not instantiated"),
    }
}
