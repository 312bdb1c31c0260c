//! The forward-type kernel for narrow planes (w up to 16) at stride 1 in (h, w), kernel 3 in w: output
//! channels in vectors (CV vectors of L channels) x N positions along one output row, summed over input
//! channels and the taps that land inside the volume (no padding FLOPs: taps off the plane in d/h are
//! dropped per row, taps off the row in w per tile edge, at compile time). Per (input channel, (d, h) tap
//! row) the 3 w-taps' weight vectors stay in registers and each input value of the row is broadcast once
//! and used by every tap that reaches it. Inputs are read in place (PyTorch's layout).
//!
//! Blocking (NOTE: measured on 256 ch at 8^3, where the weights of one group no longer fit L2 next to x):
//! a task is (batch, channel group, output d, block of output rows); input channels run in blocks whose
//! packed weights (~256 KiB) stay in L2 across the rows of the task, the partial sums wait in a stack buffer.
//! Weights are packed `[group][red][tap][gw]` (`pack`). Drivers: `corr` (Conv3d forward) and `adj` (Conv3d
//! backward-data, the flipped kernel) at stride 1 in h and w; d may have any stride.

use super::layout::P;
use super::reference::Geom;
use super::simd::{run_tasks, Simd, Task};
use crate::cpu::features::Level;
use crate::pool::pool;

/// Most positions per register tile along a row.
pub const NP: usize = 8;
/// Floats of a task's partial-sum buffer ([position][gw]); bounds the rows per task.
const BUF: usize = 256 * 32;

/// Vectors of output channels per tile at each level (AVX2: 8 accumulators + 3 weights fit 16 registers).
pub fn cv(level: Level) -> usize {
    match level {
        Level::Avx512 => 2,
        Level::Avx2 => 1,
        Level::Scalar => 8,
    }
}

/// Pack weight `[C_lo][C_hi][taps]` as `[group][red][tap][gw]` with out = lo channels (corr) or hi channels
/// (adj); out channels past the end are zero.
pub fn pack(g: &Geom, w: &[f32], corr: bool, gw: usize, dst: *mut f32) {
    let taps = g.k[0] * g.k[1] * g.k[2];
    let (c_out, c_red) = if corr { (g.c_lo, g.c_hi) } else { (g.c_hi, g.c_lo) };
    let per = taps * c_red * gw;
    let d = P::of(dst);
    pool().parallel_for(c_out.div_ceil(gw), |cg| {
        let o = unsafe { std::slice::from_raw_parts_mut(d.f().add(cg * per), per) };
        for r in 0..c_red {
            let o = &mut o[r * taps * gw..][..taps * gw];
            for j in 0..gw {
                let co = cg * gw + j;
                if co >= c_out {
                    for t in 0..taps {
                        o[t * gw + j] = 0.0;
                    }
                    continue;
                }
                let src = if corr { &w[(co * g.c_hi + r) * taps..][..taps] } else { &w[(r * g.c_hi + co) * taps..][..taps] };
                for (t, &v) in src.iter().enumerate() {
                    o[t * gw + j] = v;
                }
            }
        }
    });
}

#[derive(Clone, Copy)]
pub struct Pass {
    pub g: Geom,
    pub level: Level,
    pub corr: bool,
    pub src: P,
    /// weights packed by `pack` with group width `gw`
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
    /// output (d, h, w) sizes; w equals the source's (stride 1 in w)
    fn out_dims(&self) -> (usize, usize, usize) {
        let g = &self.g;
        if self.corr { (g.lo[0], g.lo[1], g.lo[2]) } else { (g.hi[0], g.hi[1], g.hi[2]) }
    }
}

struct Job<const CV: usize> {
    p: Pass,
    /// output rows per task, row blocks per plane, input channels per block
    rows: usize,
    hblocks: usize,
    rb: usize,
}

/// One (d, h) tap row: the source offset of its row (at w = 0) and its 3 w-taps' weights as
/// `w + t*ws` for the tap that shifts the source by t - 1.
#[derive(Clone, Copy, Default)]
struct RowTap {
    off: isize,
    w: isize,
    ws: isize,
}

/// Arguments of one tile: partial sums, source (channel block start, tile start), rows, channel count
/// and stride, weights (channel block start) and floats per channel.
type TileArgs<'a> = (*mut f32, *const f32, &'a [RowTap], usize, usize, *const f32, usize);

/// buf[q][c] += sum over channels and rows of x[row][q + t - 1] * w[row][t][c] for q < N. LEFT / RIGHT:
/// the source has a value before / after the tile (else those taps are skipped, not read).
#[inline(always)]
unsafe fn tile<S: Simd, const CV: usize, const N: usize, const LEFT: bool, const RIGHT: bool>(
    (buf, x, rows, nr, cstride, wp, wr): TileArgs,
) {
    let mut acc = [[S::zero(); CV]; N];
    for q in 0..N {
        for c in 0..CV {
            acc[q][c] = S::load(buf.add((q * CV + c) * S::L));
        }
    }
    let (mut xr, mut wrp) = (x, wp);
    for _ in 0..nr {
        for rt in rows {
            let xp = xr.wrapping_offset(rt.off);
            // NOTE: channels lie a multiple of 4 KiB apart at 16^3 (the same L1 sets), so each row is
            // fetched from L2; ask for the next channel's row now
            prefetch(xp.wrapping_add(cstride).wrapping_sub(1));
            prefetch(xp.wrapping_add(cstride + N));
            let w0 = wrp.wrapping_offset(rt.w);
            let mut wv = [[S::zero(); CV]; 3];
            for t in 0..3 {
                for c in 0..CV {
                    wv[t][c] = S::load(w0.offset(t as isize * rt.ws + (c * S::L) as isize));
                }
            }
            // source value s feeds position q = s + 1 - t through tap t
            for s in 0..N {
                let xb = S::set1(*xp.add(s));
                for t in 0..3 {
                    if s + 1 >= t && s + 1 - t < N {
                        for c in 0..CV {
                            acc[s + 1 - t][c] = S::fma(xb, wv[t][c], acc[s + 1 - t][c]);
                        }
                    }
                }
            }
            // NOTE: the edge values apart from the main loop, which then unrolls the same for every edge case
            if LEFT {
                let xb = S::set1(*xp.offset(-1));
                for c in 0..CV {
                    acc[0][c] = S::fma(xb, wv[0][c], acc[0][c]);
                }
            }
            if RIGHT {
                let xb = S::set1(*xp.add(N));
                for c in 0..CV {
                    acc[N - 1][c] = S::fma(xb, wv[2][c], acc[N - 1][c]);
                }
            }
        }
        xr = xr.wrapping_add(cstride);
        wrp = wrp.wrapping_add(wr);
    }
    for q in 0..N {
        for c in 0..CV {
            S::store(buf.add((q * CV + c) * S::L), acc[q][c]);
        }
    }
}

#[inline(always)]
fn prefetch(p: *const f32) {
    // SAFETY: a prefetch never faults, whatever the address
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
}

/// `tile` for a run-time width (1..=NP) and edge flags.
#[inline(always)]
unsafe fn tile_any<S: Simd, const CV: usize>(n: usize, left: bool, right: bool, a: TileArgs) {
    macro_rules! go {
        ($($n:literal)*) => {
            match (n, left, right) {
                $(
                    ($n, false, false) => tile::<S, CV, $n, false, false>(a),
                    ($n, true, false) => tile::<S, CV, $n, true, false>(a),
                    ($n, false, true) => tile::<S, CV, $n, false, true>(a),
                    ($n, true, true) => tile::<S, CV, $n, true, true>(a),
                )*
                _ => unreachable!("row tile of {n} positions"),
            }
        };
    }
    go!(1 2 3 4 5 6 7 8);
}

impl<const CV: usize> Task for Job<CV> {
    #[inline(always)]
    unsafe fn exec<S: Simd>(&self, i: usize) {
        let p = &self.p;
        let g = &p.g;
        let (od_n, oh_n, w_n) = p.out_dims();
        let (c_out, c_red) = (p.c_out(), p.c_red());
        let gw = CV * S::L;
        let groups = c_out.div_ceil(gw);
        let hb = i % self.hblocks;
        let od = (i / self.hblocks) % od_n;
        let cg = (i / self.hblocks / od_n) % groups;
        let n = i / self.hblocks / od_n / groups;
        let (h0, h1) = (hb * self.rows, ((hb + 1) * self.rows).min(oh_n));
        let plane = g.lo[1] * g.lo[2];
        let src_d = if p.corr { g.hi[0] } else { g.lo[0] };
        let cstride = src_d * plane;
        let src = (p.src.f() as *const f32).add(n * c_red * cstride);
        let ntaps = g.k[0] * g.k[1] * 3;
        let wg = (p.wpk.f() as *const f32).add(cg * ntaps * c_red * gw);
        let mut buf = [0f32; BUF];
        // tiles: the row split evenly into pieces of at most NP positions
        let per = w_n.div_ceil(w_n.div_ceil(NP));
        for r0 in (0..c_red).step_by(self.rb) {
            let nr = self.rb.min(c_red - r0);
            for oh in h0..h1 {
                let mut rows = [RowTap::default(); 9];
                let mut nt = 0;
                for td in 0..g.k[0] {
                    // source d index: corr o*s + q; adj (o + p - t)/s when divisible
                    let sd = if p.corr {
                        let v = (od * g.s[0] + td) as isize - g.p[0] as isize;
                        if v < 0 || v as usize >= src_d {
                            continue;
                        }
                        v as usize
                    } else {
                        let q = (od + g.p[0]) as isize - td as isize;
                        if q < 0 || !(q as usize).is_multiple_of(g.s[0]) || q as usize / g.s[0] >= src_d {
                            continue;
                        }
                        q as usize / g.s[0]
                    };
                    for th in 0..g.k[1] {
                        let q = th as isize - g.p[1] as isize;
                        let sh = oh as isize + if p.corr { q } else { -q };
                        if sh < 0 || sh as usize >= g.lo[1] {
                            continue;
                        }
                        let t0 = ((td * g.k[1] + th) * 3) as isize * gw as isize;
                        // corr: tap t shifts by tw - 1 = t - 1; adj: by 1 - tw, so tw = 2 - t
                        let (w, ws) = if p.corr { (t0, gw as isize) } else { (t0 + 2 * gw as isize, -(gw as isize)) };
                        rows[nt] = RowTap { off: (sd * plane + sh as usize * w_n) as isize, w, ws };
                        nt += 1;
                    }
                }
                for w0 in (0..w_n).step_by(per) {
                    let np = per.min(w_n - w0);
                    let a = (
                        buf.as_mut_ptr().add(((oh - h0) * w_n + w0) * gw),
                        src.add(r0 * cstride + w0),
                        &rows[..nt],
                        nr,
                        cstride,
                        wg.add(r0 * ntaps * gw),
                        ntaps * gw,
                    );
                    tile_any::<S, CV>(np, w0 > 0, w0 + np < w_n, a);
                }
            }
        }
        // epilogue: [position][channel] -> the plain layout (the block's rows are contiguous)
        let len = (h1 - h0) * w_n;
        for j in 0..gw {
            let co = cg * gw + j;
            if co >= c_out {
                break;
            }
            let b = if p.has_bias { *p.bias.f().add(co) } else { 0.0 };
            let dst = std::slice::from_raw_parts_mut(p.out.f().add((((n * c_out + co) * od_n + od) * oh_n + h0) * w_n), len);
            for (q, o) in dst.iter_mut().enumerate() {
                let v = buf[q * gw + j] + b;
                *o = if p.acc { *o + v } else { v };
            }
        }
    }
}

/// Run a corr or adj pass at stride 1 in h and w, kernel 3 in w, w <= 16 (weights packed by `pack`).
pub fn run(p: Pass) {
    let (od_n, oh_n, w_n) = p.out_dims();
    assert!(p.g.k[2] == 3 && p.g.s[1] == 1 && p.g.s[2] == 1 && w_n <= 16, "row tile needs kw 3, stride 1 in h, w, w <= 16");
    let groups = p.c_out().div_ceil(p.gw);
    let rows = (BUF / p.gw / w_n).clamp(1, oh_n);
    let hblocks = oh_n.div_ceil(rows);
    // input channels per block: about 256 KiB of packed weights, split evenly
    let per_red = p.g.k[0] * p.g.k[1] * 3 * p.gw * 4;
    let blocks = p.c_red().div_ceil((256 * 1024 / per_red).max(1));
    let rb = p.c_red().div_ceil(blocks);
    let n = p.g.n * groups * od_n * hblocks;
    match cv(p.level) {
        1 => run_tasks(p.level, n, &Job::<1> { p, rows, hblocks, rb }),
        2 => run_tasks(p.level, n, &Job::<2> { p, rows, hblocks, rb }),
        8 => run_tasks(p.level, n, &Job::<8> { p, rows, hblocks, rb }),
        c => unreachable!("row tile with {c} channel vectors not instantiated"),
    }
}
