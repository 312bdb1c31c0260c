//! The fast weight gradient dw[cl][ch][t] = sum_{n,o} lo[n][cl][o] * hi[n][ch][o*s + t - p] (reference.rs
//! `wgrad`; Conv3d: lo = dy, hi = x; ConvTranspose3d: lo = x, hi = dy), as a GEMM over positions whose
//! register tile is R broadcast rows x CV vectors of channels (no horizontal sums):
//! - standard (many hi channels): rows = lo channels read in place, vectors = hi channels from a
//!   channels-last, phase-split copy of hi with a zero halo, one tap at a time;
//! - swapped (few hi channels, e.g. the 1-channel first layer): rows = (hi channel, tap) pairs read from a
//!   zero-haloed plain copy of hi, vectors = lo channels from a channels-last copy of lo.
//! Each pool task owns a contiguous range of (n, d, h) rows and a private partial sum in the workspace;
//! the partials are reduced at the end (a fixed order, so results do not depend on scheduling).

use super::layout::{Carve, P};
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
fn nph(g: &Geom) -> usize {
    g.s[1] * g.s[2]
}
fn halo_plane(g: &Geom) -> usize {
    (g.lo[1] + 2) * (g.lo[2] + 2)
}

pub fn shapes(level: Level) -> &'static [(usize, usize)] {
    match level {
        Level::Avx512 => &[(12, 2), (8, 3), (6, 4), (24, 1), (9, 2)],
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
            let work = (rows.div_ceil(r) * r * cp) as f64 * if swapped { 1.0 } else { taps(g) as f64 };
            let cost = work * (1.0 + 2.0 / (r * cv) as f64);
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, Plan { swapped, r, cv, cp }));
            }
        }
    }
    best.unwrap().1
}

/// Byte sizes of the buffers the weight gradient carves at `level`.
pub fn sizes(level: Level, g: &Geom) -> Vec<usize> {
    plan_sizes(g, &plan(level, g))
}

pub fn plan_sizes(g: &Geom, pl: &Plan) -> Vec<usize> {
    let t = pool().threads();
    if pl.swapped {
        vec![
            g.n * g.lo[0] * g.lo[1] * g.lo[2] * pl.cp * 4,
            g.n * g.c_hi * g.hi[0] * nph(g) * halo_plane(g) * 4,
            (g.lo[2] + 2) * 4,
            t * g.c_hi * taps(g) * pl.cp * 4,
        ]
    } else {
        vec![g.n * g.hi[0] * nph(g) * halo_plane(g) * pl.cp * 4, t * g.c_lo * taps(g) * pl.cp * 4]
    }
}

/// Copy `[N][C][D][H][W]` phase-split into `[N][D][ph][LO_h+2*halo][LO_w+2*halo][cp]` (channels last,
/// zero halo and zero padded channels); (s_h, s_w) = (1, 1) is a plain transpose.
#[allow(clippy::too_many_arguments)]
fn pack_cl(src: &[f32], n: usize, c: usize, dhw: [usize; 3], s: [usize; 2], lo: [usize; 2], halo: usize, cp: usize, dst: *mut f32) {
    let (hp, wp) = (lo[0] + 2 * halo, lo[1] + 2 * halo);
    let np = s[0] * s[1];
    let sp = dhw[0] * dhw[1] * dhw[2];
    let d = P::of(dst);
    pool().parallel_for(n * dhw[0] * np * hp, |row| {
        let y = row % hp;
        let ph = (row / hp) % np;
        let id = (row / hp / np) % dhw[0];
        let b = row / hp / np / dhw[0];
        let o = unsafe { std::slice::from_raw_parts_mut(d.f().add(row * wp * cp), wp * cp) };
        o.fill(0.0);
        if y < halo || y >= lo[0] + halo {
            return;
        }
        let ih = (y - halo) * s[0] + ph / s[1];
        if ih >= dhw[1] {
            return;
        }
        for ch in 0..c {
            let plane = &src[(b * c + ch) * sp + (id * dhw[1] + ih) * dhw[2]..][..dhw[2]];
            for x in 0..lo[1] {
                let iw = x * s[1] + ph % s[1];
                if iw < dhw[2] {
                    o[(x + halo) * cp + ch] = plane[iw];
                }
            }
        }
    });
}

/// Copy hi `[N][C][D][H][W]` phase-split with a zero halo: `[N][C][D][ph][LO_h+2][LO_w+2]`.
fn pack_pad(g: &Geom, src: &[f32], dst: *mut f32) {
    let (lh, lw) = (g.lo[1], g.lo[2]);
    let (hh, hw) = (g.hi[1], g.hi[2]);
    let per = nph(g) * halo_plane(g);
    let d = P::of(dst);
    pool().parallel_for(g.n * g.c_hi * g.hi[0], |s| {
        let o = unsafe { std::slice::from_raw_parts_mut(d.f().add(s * per), per) };
        o.fill(0.0);
        let plane = &src[s * hh * hw..][..hh * hw];
        for ph in 0..nph(g) {
            let (ah, aw) = (ph / g.s[2], ph % g.s[2]);
            for j in 0..lh {
                let y = j * g.s[1] + ah;
                for i in 0..lw {
                    let x = i * g.s[2] + aw;
                    if y < hh && x < hw {
                        o[ph * halo_plane(g) + (j + 1) * (lw + 2) + i + 1] = plane[y * hw + x];
                    }
                }
            }
        }
    });
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

#[derive(Clone, Copy)]
struct Ctx {
    g: Geom,
    pl: Plan,
    lo: P,
    /// standard: channels-last haloed hi; swapped: haloed plain hi
    hi: P,
    /// swapped: channels-last lo
    lcl: P,
    zero: P,
    partial: P,
    per_task: usize,
    tasks: usize,
}

struct Job<const R: usize, const CV: usize>(Ctx);

impl<const R: usize, const CV: usize> Task for Job<R, CV> {
    #[inline(always)]
    unsafe fn exec<S: Simd>(&self, task: usize) {
        let c = &self.0;
        let (g, pl) = (&c.g, &c.pl);
        let (ld, lh, lw) = (g.lo[0], g.lo[1], g.lo[2]);
        let nt = taps(g);
        let rows_total = g.n * ld * lh;
        let (r0, r1) = (task * rows_total / c.tasks, (task + 1) * rows_total / c.tasks);
        let part = c.partial.f().add(task * c.per_task);
        std::slice::from_raw_parts_mut(part, c.per_task).fill(0.0);
        // Rows per block: about 512 positions, never crossing a (n, d) plane.
        let br = (512 / lw).max(1);
        let hp = halo_plane(g);
        let mut row = r0;
        while row < r1 {
            let oh0 = row % lh;
            let nd = row / lh;
            let (n, od) = (nd / ld, nd % ld);
            let oh1 = (oh0 + br).min(lh).min(oh0 + (r1 - row));
            row += oh1 - oh0;
            let hi_off = |ch: usize, t: usize| -> Option<usize> {
                // offset of (ch, tap t) at row oh = 0, column 0 in the haloed copy
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
            let row_step = if pl.swapped { lw + 2 } else { (lw + 2) * pl.cp };
            let nvec = pl.cp / S::L;
            if !pl.swapped {
                for t in 0..nt {
                    let Some(hoff) = hi_off(0, t) else { continue };
                    for cl0 in (0..g.c_lo).step_by(R) {
                        for v0 in (0..nvec).step_by(CV) {
                            let mut acc = [[S::zero(); CV]; R];
                            for oh in oh0..oh1 {
                                let mut a = [std::ptr::null::<f32>(); R];
                                for (r, ar) in a.iter_mut().enumerate() {
                                    let cl = (cl0 + r).min(g.c_lo - 1);
                                    *ar = c.lo.f().add((((n * g.c_lo + cl) * ld + od) * lh + oh) * lw);
                                }
                                let b = c.hi.f().add(hoff + oh * row_step + v0 * S::L);
                                gemm::<S, R, CV>(&a, b, pl.cp, lw, &mut acc);
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
            } else {
                let rows = g.c_hi * nt;
                for q0 in (0..rows).step_by(R) {
                    let mut offs = [None; R];
                    for (r, o) in offs.iter_mut().enumerate() {
                        if q0 + r < rows {
                            *o = hi_off((q0 + r) / nt, (q0 + r) % nt);
                        }
                    }
                    for v0 in (0..nvec).step_by(CV) {
                        let mut acc = [[S::zero(); CV]; R];
                        for oh in oh0..oh1 {
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
        }
    }
}

/// dw `[C_lo][C_hi][taps]` (=|+=) the weight gradient, at CPU `level`.
pub fn run(level: Level, g: &Geom, lo: &[f32], hi: &[f32], dw: &mut [f32], acc: bool, ws: &mut [u8]) {
    run_plan(level, plan(level, g), g, lo, hi, dw, acc, ws)
}

/// `run` with a given plan (tests run every tile shape); ws must hold `plan_sizes(g, &pl)`.
#[allow(clippy::too_many_arguments)]
pub fn run_plan(level: Level, pl: Plan, g: &Geom, lo: &[f32], hi: &[f32], dw: &mut [f32], acc: bool, ws: &mut [u8]) {
    let tasks = pool().threads();
    let nt = taps(g);
    let mut cv = Carve::new(ws);
    let (hi_p, lcl, zero, per_task);
    if pl.swapped {
        let l = cv.f32s(g.n * g.lo[0] * g.lo[1] * g.lo[2] * pl.cp);
        pack_cl(lo, g.n, g.c_lo, g.lo, [1, 1], [g.lo[1], g.lo[2]], 0, pl.cp, l);
        let h = cv.f32s(g.n * g.c_hi * g.hi[0] * nph(g) * halo_plane(g));
        pack_pad(g, hi, h);
        let z = cv.f32s(g.lo[2] + 2);
        unsafe { std::slice::from_raw_parts_mut(z, g.lo[2] + 2).fill(0.0) };
        (hi_p, lcl, zero, per_task) = (P::of(h), P::of(l), P::of(z), g.c_hi * nt * pl.cp);
    } else {
        let h = cv.f32s(g.n * g.hi[0] * nph(g) * halo_plane(g) * pl.cp);
        pack_cl(hi, g.n, g.c_hi, g.hi, [g.s[1], g.s[2]], [g.lo[1], g.lo[2]], 1, pl.cp, h);
        (hi_p, lcl, zero, per_task) = (P::of(h), P(0), P(0), g.c_lo * nt * pl.cp);
    }
    let partial = cv.f32s(tasks * per_task);
    let ctx = Ctx { g: *g, pl, lo: P::of(lo.as_ptr()), hi: hi_p, lcl, zero, partial: P::of(partial), per_task, tasks };
    macro_rules! go {
        ($($r:literal, $c:literal);*) => {
            match (pl.r, pl.cv) {
                $(($r, $c) => run_tasks(level, tasks, &Job::<$r, $c>(ctx)),)*
                _ => unreachable!("wgrad tile {:?} not instantiated", (pl.r, pl.cv)),
            }
        };
    }
    go!(12, 2; 8, 3; 6, 4; 24, 1; 9, 2; 12, 1; 6, 2; 4, 3; 9, 1; 4, 4; 8, 1);
    let out = P::of(dw.as_mut_ptr());
    let part = P::of(partial);
    pool().parallel_for(g.c_lo, |cl| {
        let o = unsafe { std::slice::from_raw_parts_mut(out.f().add(cl * g.c_hi * nt), g.c_hi * nt) };
        for ch in 0..g.c_hi {
            for t in 0..nt {
                let idx = if pl.swapped { (ch * nt + t) * pl.cp + cl } else { (cl * nt + t) * pl.cp + ch };
                let mut s = 0f32;
                for k in 0..tasks {
                    s += unsafe { *part.f().add(k * per_task + idx) };
                }
                let d = &mut o[ch * nt + t];
                *d = if acc { *d + s } else { s };
            }
        }
    });
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
