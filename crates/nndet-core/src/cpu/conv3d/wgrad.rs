//! The fast weight gradient dw[cl][ch][t] = sum_{n,o} lo[n][cl][o] * hi[n][ch][o*s + t - p] (reference.rs
//! `wgrad`; Conv3d: lo = dy, hi = x; ConvTranspose3d: lo = x, hi = dy), as a GEMM over positions whose
//! register tile is R broadcast rows x CV vectors of channels (no horizontal sums):
//! - standard (many hi channels): rows = lo channels read in place, vectors = hi channels from a
//!   channels-last, phase-split copy of hi with a zero halo, one tap at a time;
//! - swapped (few hi channels, e.g. the 1-channel first layer): rows = (hi channel, tap) pairs read from a
//!   zero-haloed plain copy of hi, vectors = lo channels from a channels-last copy of lo.
//! Each pool task takes a contiguous range of (n, d, h) rows and adds into a claimed partial sum in the
//! workspace (layout::Slots); the partials are reduced at the end.

use super::layout::{zero, Carve, Sizes, Slots, P};
use super::pack::{pack_cl, pack_pad};
use super::reference::Geom;
use super::simd::{lanes, run_tasks, Simd, Task};
use crate::cpu::features::Level;
use crate::pool::pool;

/// How one level computes a given geometry.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub swapped: bool,
    pub r: usize,
    pub cv: usize,
    /// vector-side channels, padded to a multiple of cv * lanes
    pub cp: usize,
}

fn taps(g: &Geom) -> usize {
    g.k[0] * g.k[1] * g.k[2]
}
pub(super) fn nph(g: &Geom) -> usize {
    g.s[1] * g.s[2]
}
pub(super) fn halo_plane(g: &Geom) -> usize {
    (g.lo[1] + 2) * (g.lo[2] + 2)
}

/// Positions per block: whole (h) rows, about 512 positions.
fn block_rows(g: &Geom) -> usize {
    (512 / g.lo[2]).max(1)
}
fn block_k(g: &Geom) -> usize {
    block_rows(g) * g.lo[2]
}

pub fn shapes(level: Level) -> &'static [(usize, usize)] {
    match level {
        Level::Avx512 => &[(12, 2), (8, 3), (6, 4), (24, 1), (9, 2), (8, 2)],
        Level::Avx2 => &[(12, 1), (6, 2), (4, 3), (9, 1)],
        Level::Scalar => &[(4, 4), (8, 1)],
    }
}

pub fn plan(level: Level, g: &Geom) -> Plan {
    let l = lanes(level);
    let mut best: Option<(f64, Plan)> = None;
    for swapped in [false, true] {
        let (rows, vch) = if swapped { (g.c_hi * taps(g), g.c_lo) } else { (g.c_lo, g.c_hi) };
        for &(r, cv) in shapes(level) {
            let cp = vch.div_ceil(cv * l) * cv * l;
            let work = (rows.div_ceil(r) * r * cp) as f64 * if swapped { 1.5 } else { taps(g) as f64 };
            let cost = work * (1.0 + 2.0 / (r * cv) as f64);
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, Plan { swapped, r, cv, cp }));
            }
        }
    }
    best.unwrap().1
}

/// Byte sizes of the buffers the weight gradient carves at `level`.
pub fn sizes(level: Level, g: &Geom) -> Sizes {
    if super::dot::applies(g) {
        return super::dot::sizes(g);
    }
    if super::tapdot::applies(g) {
        return super::tapdot::sizes(g);
    }
    plan_sizes(g, &plan(level, g))
}

pub fn plan_sizes(g: &Geom, pl: &Plan) -> Sizes {
    let t = Slots::count();
    if pl.swapped {
        [
            g.n * g.lo[0] * g.lo[1] * g.lo[2] * pl.cp * 4,
            g.n * g.c_hi * g.hi[0] * nph(g) * halo_plane(g) * 4,
            (g.lo[2] + 2) * 4,
            t * g.c_hi * taps(g) * pl.cp * 4,
        ]
    } else {
        [
            g.n * g.hi[0] * nph(g) * halo_plane(g) * pl.cp * 4,
            t * g.c_lo * taps(g) * pl.cp * 4,
            t * g.c_lo.div_ceil(pl.r) * pl.r * block_k(g) * 4,
            0,
        ]
    }
}

/// acc[r][c] += sum_{i<k} a[r][i] * b[i*b_step + c*L ..]
#[inline(always)]
unsafe fn gemm<S: Simd, const R: usize, const CV: usize>(
    a: &[*const f32; R],
    b: *const f32,
    b_step: usize,
    k: usize,
    acc: &mut [[S::V; CV]; R],
) {
    for i in 0..k {
        let mut bv = [S::zero(); CV];
        for (c, v) in bv.iter_mut().enumerate() {
            *v = S::load(b.add(i * b_step + c * S::L));
        }
        for r in 0..R {
            let av = S::set1(*a[r].add(i));
            for c in 0..CV {
                acc[r][c] = S::fma(av, bv[c], acc[r][c]);
            }
        }
    }
}

/// Offset of tap (th, tw) relative to tap (0, 0) in the standard haloed copy (same d-plane).
fn tap_delta(g: &Geom, pl: &Plan, thw: usize) -> usize {
    let (th, tw) = (thw / g.k[2], thw % g.k[2]);
    let cell = |th: usize, tw: usize| {
        let (qh, qw) = (th as isize - g.p[1] as isize, tw as isize - g.p[2] as isize);
        let ph = (qh.rem_euclid(g.s[1] as isize) * g.s[2] as isize + qw.rem_euclid(g.s[2] as isize)) as usize;
        let (dh, dw) = (qh.div_euclid(g.s[1] as isize), qw.div_euclid(g.s[2] as isize));
        ph * halo_plane(g) * pl.cp + ((dh + 1) as usize * (g.lo[2] + 2) + (dw + 1) as usize) * pl.cp
    };
    cell(th, tw).wrapping_sub(cell(0, 0))
}

/// acc[r][c] += sum_{i<k} a[i*R + r] * b[i*b_step + c*L ..] (A packed position-major)
#[inline(always)]
unsafe fn gemm_packed<S: Simd, const R: usize, const CV: usize>(
    a: *const f32,
    b: *const f32,
    b_step: usize,
    k: usize,
    acc: &mut [[S::V; CV]; R],
) {
    for i in 0..k {
        let mut bv = [S::zero(); CV];
        for (c, v) in bv.iter_mut().enumerate() {
            *v = S::load(b.add(i * b_step + c * S::L));
        }
        for r in 0..R {
            let av = S::set1(*a.add(i * R + r));
            for c in 0..CV {
                acc[r][c] = S::fma(av, bv[c], acc[r][c]);
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Ctx<'a> {
    g: Geom,
    pl: Plan,
    lo: P,
    /// standard: channels-last haloed hi; swapped: haloed plain hi
    hi: P,
    /// swapped: channels-last lo
    lcl: P,
    zero: P,
    partial: P,
    /// standard: per task, the block's lo rows packed as [cl tile][position][R]
    apk: P,
    per_task: usize,
    tasks: usize,
    slots: &'a Slots,
}

struct Job<'a, const R: usize, const CV: usize>(Ctx<'a>);

impl<const R: usize, const CV: usize> Task for Job<'_, R, CV> {
    #[inline(always)]
    unsafe fn exec<S: Simd>(&self, task: usize) {
        let c = &self.0;
        let (g, pl) = (&c.g, &c.pl);
        let (ld, lh, lw) = (g.lo[0], g.lo[1], g.lo[2]);
        let nt = taps(g);
        let rows_total = g.n * ld * lh;
        let (r0, r1) = (task * rows_total / c.tasks, (task + 1) * rows_total / c.tasks);
        let slot = c.slots.claim();
        let part = c.partial.f().add(slot * c.per_task);
        // Rows per block: about 512 positions (several (n, d) planes when planes are small), so the
        // register tiles are flushed into the partial rarely.
        let br = block_rows(g);
        let hp = halo_plane(g);
        let row_step = if pl.swapped { lw + 2 } else { (lw + 2) * pl.cp };
        let nvec = pl.cp / S::L;
        // Offset of (hi channel ch, tap t) at row oh = 0, column 0 of plane nd = n*LO_d + od in the haloed copy.
        let hi_off = |nd: usize, ch: usize, t: usize| -> Option<usize> {
            let (n, od) = (nd / ld, nd % ld);
            let (td, th, tw) = (t / (g.k[1] * g.k[2]), (t / g.k[2]) % g.k[1], t % g.k[2]);
            let id = (od * g.s[0] + td) as isize - g.p[0] as isize;
            if id < 0 || id as usize >= g.hi[0] {
                return None;
            }
            let (qh, qw) = (th as isize - g.p[1] as isize, tw as isize - g.p[2] as isize);
            let ph = (qh.rem_euclid(g.s[1] as isize) * g.s[2] as isize + qw.rem_euclid(g.s[2] as isize)) as usize;
            let (dh, dw) = (qh.div_euclid(g.s[1] as isize), qw.div_euclid(g.s[2] as isize));
            let base = if pl.swapped {
                (((n * g.c_hi + ch) * g.hi[0] + id as usize) * nph(g) + ph) * hp
            } else {
                ((n * g.hi[0] + id as usize) * nph(g) + ph) * hp * pl.cp
            };
            let cell = ((dh + 1) as usize * (lw + 2) + (dw + 1) as usize) * if pl.swapped { 1 } else { pl.cp };
            Some(base + cell)
        };
        let mut b0 = r0;
        while b0 < r1 {
            let b1 = (b0 + br).min(r1);
            if !pl.swapped {
                // Pack the block's lo rows: apk[tile][j][r] = lo[n][tile*R + r][row(j)][..] (0 past C_lo).
                let k = (b1 - b0) * lw;
                let tiles = g.c_lo.div_ceil(R);
                let apk = c.apk.f().add(slot * tiles * R * block_k(g));
                for tile in 0..tiles {
                    let dst = apk.add(tile * R * k);
                    for r in 0..R {
                        let cl = tile * R + r;
                        for row in b0..b1 {
                            let (nd, oh) = (row / lh, row % lh);
                            let d = dst.add((row - b0) * lw * R + r);
                            if cl < g.c_lo {
                                let src = c.lo.f().add((((nd / ld) * g.c_lo + cl) * ld + nd % ld) * lh * lw + oh * lw);
                                for i in 0..lw {
                                    *d.add(i * R) = *src.add(i);
                                }
                            } else {
                                for i in 0..lw {
                                    *d.add(i * R) = 0.0;
                                }
                            }
                        }
                    }
                }
                for td in 0..g.k[0] {
                    // rows of the block whose d-plane this tap reaches, with their hi offset at tap (td, 0, 0)
                    let mut nrow = 0;
                    let mut rows_tab = [(0usize, 0usize); 512];
                    for row in b0..b1 {
                        let (nd, oh) = (row / lh, row % lh);
                        if let Some(o) = hi_off(nd, 0, td * g.k[1] * g.k[2]) {
                            rows_tab[nrow] = (row - b0, o + oh * row_step);
                            nrow += 1;
                        }
                    }
                    if nrow == 0 {
                        continue;
                    }
                    for thw in 0..g.k[1] * g.k[2] {
                        let t = td * g.k[1] * g.k[2] + thw;
                        // the (th, tw) part of a tap's offset does not depend on the row
                        let delta = tap_delta(g, pl, thw) as isize;
                        for tile in 0..tiles {
                            let cl0 = tile * R;
                            for v0 in (0..nvec).step_by(CV) {
                                let mut acc = [[S::zero(); CV]; R];
                                for &(j, ho) in &rows_tab[..nrow] {
                                    let a = apk.add(tile * R * k + j * lw * R);
                                    let b = c.hi.f().offset(ho as isize + delta).add(v0 * S::L);
                                    gemm_packed::<S, R, CV>(a, b, pl.cp, lw, &mut acc);
                                }
                                for (r, accr) in acc.iter().enumerate().take(g.c_lo - cl0) {
                                    let dst = part.add(((cl0 + r) * nt + t) * pl.cp + v0 * S::L);
                                    for (cc, &v) in accr.iter().enumerate() {
                                        let p = dst.add(cc * S::L);
                                        S::store(p, S::add(S::load(p), v));
                                    }
                                }
                            }
                        }
                    }
                }
            } else {
                let rows = g.c_hi * nt;
                for q0 in (0..rows).step_by(R) {
                    for v0 in (0..nvec).step_by(CV) {
                        let mut acc = [[S::zero(); CV]; R];
                        let mut nd_last = usize::MAX;
                        let mut offs = [None; R];
                        for row in b0..b1 {
                            let (nd, oh) = (row / lh, row % lh);
                            if nd != nd_last {
                                nd_last = nd;
                                for (r, o) in offs.iter_mut().enumerate() {
                                    *o = if q0 + r < rows { hi_off(nd, (q0 + r) / nt, (q0 + r) % nt) } else { None };
                                }
                            }
                            let mut a = [c.zero.f() as *const f32; R];
                            for (r, ar) in a.iter_mut().enumerate() {
                                if let Some(o) = offs[r] {
                                    *ar = c.hi.f().add(o + oh * row_step);
                                }
                            }
                            let b = c.lcl.f().add(((nd * lh + oh) * lw) * pl.cp + v0 * S::L);
                            gemm::<S, R, CV>(&a, b, pl.cp, lw, &mut acc);
                        }
                        for (r, accr) in acc.iter().enumerate().take(rows - q0) {
                            let dst = part.add((q0 + r) * pl.cp + v0 * S::L);
                            for (cc, &v) in accr.iter().enumerate() {
                                let p = dst.add(cc * S::L);
                                S::store(p, S::add(S::load(p), v));
                            }
                        }
                    }
                }
            }
            b0 = b1;
        }
        c.slots.release(slot);
    }
}

/// dw `[C_lo][C_hi][taps]` (=|+=) the weight gradient, at CPU `level`.
pub fn run(level: Level, g: &Geom, lo: &[f32], hi: &[f32], dw: &mut [f32], acc: bool, ws: &mut [u8]) {
    if super::dot::applies(g) {
        return super::dot::run(level, g, lo, hi, dw, acc, ws);
    }
    if super::tapdot::applies(g) {
        return super::tapdot::run(level, g, lo, hi, dw, acc, ws);
    }
    run_plan(level, plan(level, g), g, lo, hi, dw, acc, ws)
}

/// `run` with a given plan (tests run every tile shape); ws must hold `plan_sizes(g, &pl)`.
#[allow(clippy::too_many_arguments)]
pub fn run_plan(level: Level, pl: Plan, g: &Geom, lo: &[f32], hi: &[f32], dw: &mut [f32], acc: bool, ws: &mut [u8]) {
    let slots_n = Slots::count();
    let nt = taps(g);
    let mut cv = Carve::new(ws);
    let (hi_p, lcl, zero_row, per_task);
    if pl.swapped {
        let l = cv.f32s(g.n * g.lo[0] * g.lo[1] * g.lo[2] * pl.cp);
        pack_cl(level, lo, g.n, g.c_lo, g.lo, [1, 1], [g.lo[1], g.lo[2]], 0, pl.cp, l);
        let h = cv.f32s(g.n * g.c_hi * g.hi[0] * nph(g) * halo_plane(g));
        pack_pad(g, hi, h);
        let z = cv.f32s(g.lo[2] + 2);
        unsafe { std::slice::from_raw_parts_mut(z, g.lo[2] + 2).fill(0.0) };
        (hi_p, lcl, zero_row, per_task) = (P::of(h), P::of(l), P::of(z), g.c_hi * nt * pl.cp);
    } else {
        let h = cv.f32s(g.n * g.hi[0] * nph(g) * halo_plane(g) * pl.cp);
        pack_cl(level, hi, g.n, g.c_hi, g.hi, [g.s[1], g.s[2]], [g.lo[1], g.lo[2]], 1, pl.cp, h);
        (hi_p, lcl, zero_row, per_task) = (P::of(h), P(0), P(0), g.c_lo * nt * pl.cp);
    }
    let partial = cv.f32s(slots_n * per_task);
    zero(partial, slots_n * per_task);
    let apk = if pl.swapped { P(0) } else { P::of(cv.f32s(slots_n * g.c_lo.div_ceil(pl.r) * pl.r * block_k(g))) };
    let rows = g.n * g.lo[0] * g.lo[1];
    let tasks = (4 * slots_n).min(rows.div_ceil(block_rows(g))).max(1);
    let slots = Slots::new();
    let ctx = Ctx {
        g: *g, pl, lo: P::of(lo.as_ptr()), hi: hi_p, lcl, zero: zero_row, partial: P::of(partial), apk, per_task, tasks,
        slots: &slots,
    };
    macro_rules! go {
        ($($r:literal, $c:literal);*) => {
            match (pl.r, pl.cv) {
                $(($r, $c) => run_tasks(level, tasks, &Job::<$r, $c>(ctx)),)*
                _ => unreachable!("wgrad tile {:?} not instantiated", (pl.r, pl.cv)),
            }
        };
    }
    go!(12, 2; 8, 3; 6, 4; 24, 1; 9, 2; 8, 2; 12, 1; 6, 2; 4, 3; 9, 1; 4, 4; 8, 1);
    let out = P::of(dw.as_mut_ptr());
    let part = P::of(partial);
    // NOTE: partials are read in their own order (contiguous), dw is written with stride within a row.
    if pl.swapped {
        pool().parallel_for(g.c_lo, |cl| {
            let o = unsafe { std::slice::from_raw_parts_mut(out.f().add(cl * g.c_hi * nt), g.c_hi * nt) };
            for (q, d) in o.iter_mut().enumerate() {
                let mut s = 0f32;
                for k in 0..slots_n {
                    s += unsafe { *part.f().add(k * per_task + q * pl.cp + cl) };
                }
                *d = if acc { *d + s } else { s };
            }
        });
    } else {
        pool().parallel_for(g.c_lo, |cl| {
            let o = unsafe { std::slice::from_raw_parts_mut(out.f().add(cl * g.c_hi * nt), g.c_hi * nt) };
            for t in 0..nt {
                let row = (cl * nt + t) * pl.cp;
                for ch in 0..g.c_hi {
                    let mut s = 0f32;
                    for k in 0..slots_n {
                        s += unsafe { *part.f().add(k * per_task + row + ch) };
                    }
                    let d = &mut o[ch * nt + t];
                    *d = if acc { *d + s } else { s };
                }
            }
        });
    }
}

/// db[c] (=|+=) sum over n and space of dy `[N][C][sp]` (16 running f32 sums per chunk, f64 across).
pub fn bias_grad(n: usize, c: usize, sp: usize, dy: &[f32], db: &mut [f32], acc: bool) {
    let out = P::of(db.as_mut_ptr());
    pool().parallel_for(c, |ci| {
        let mut total = 0f64;
        for b in 0..n {
            for chunk in dy[(b * c + ci) * sp..][..sp].chunks(4096) {
                let mut s = [0f32; 16];
                let mut it = chunk.chunks_exact(16);
                for v in &mut it {
                    for k in 0..16 {
                        s[k] += v[k];
                    }
                }
                total += it.remainder().iter().map(|&v| v as f64).sum::<f64>();
                total += s.iter().map(|&v| v as f64).sum::<f64>();
            }
        }
        let d = unsafe { &mut *out.f().add(ci) };
        *d = if acc { (*d as f64 + total) as f32 } else { total as f32 };
    });
}
