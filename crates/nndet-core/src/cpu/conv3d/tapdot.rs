//! The weight gradient for few input channels at stride 1 (the 1-channel first layer):
//! dw[cl][ch][t] = sum_{n,o} lo[n][cl][o] * hi[n][ch][o + t - p] (reference.rs `wgrad`), vectorised along
//! each (h, w) plane of PyTorch's own layout; the plane masks (layout.rs) zero the taps that fall off the
//! plane, so neither tensor is copied. Register tile: R lo rows x C (hi channel, tap) columns of vector
//! partial sums, summed across lanes once per plane. Each task is one (n, d) plane and adds into a claimed
//! partial `[C_lo][C_hi * taps]` (layout::Slots).

use super::layout::{build_masks, mask_rows, slot, zero, Carve, Sizes, Slots, P, SLOTS};
use super::reference::Geom;
use super::simd::{lanes, run_tasks, Simd, Task};
use crate::cpu::features::Level;
use crate::pool::pool;

const R: usize = 4;
const C: usize = 6;

/// Does this geometry take the tap-dot path?
pub fn applies(g: &Geom) -> bool {
    g.s == [1, 1, 1] && g.c_hi <= 4 && g.k != [1, 1, 1]
}

fn taps(g: &Geom) -> usize {
    g.k[0] * g.k[1] * g.k[2]
}

/// Byte sizes of the buffers carved (masks for one lane, the largest table; the partials).
pub fn sizes(g: &Geom) -> Sizes {
    [mask_rows(g.lo[1] * g.lo[2], 1) * SLOTS * 2, Slots::count() * g.c_lo * g.c_hi * taps(g) * 4, 0, 0]
}

struct Job {
    g: Geom,
    lo: P,
    hi: P,
    masks: P,
    partial: P,
    slots: Slots,
}

impl Task for Job {
    #[inline(always)]
    unsafe fn exec<S: Simd>(&self, nd: usize) {
        let g = &self.g;
        let (ld, lh, lw) = (g.lo[0], g.lo[1], g.lo[2]);
        let (n, od) = (nd / ld, nd % ld);
        let plane = lh * lw;
        let nvec = plane.div_ceil(S::L);
        let nt = taps(g);
        let cols = g.c_hi * nt;
        let masks = self.masks.0 as *const u16;
        let slot_k = self.slots.claim();
        let part = self.partial.f().add(slot_k * g.c_lo * cols);
        let lo_n = (self.lo.f() as *const f32).add((n * g.c_lo * ld + od) * plane);
        let hi_n = (self.hi.f() as *const f32).add(n * g.c_hi * g.hi[0] * plane);
        for cl0 in (0..g.c_lo).step_by(R) {
            let mut a = [lo_n; R];
            for (r, ar) in a.iter_mut().enumerate() {
                *ar = lo_n.add((cl0 + r).min(g.c_lo - 1) * ld * plane);
            }
            for q0 in (0..cols).step_by(C) {
                // column c: (hi channel, tap) -> source pointer and mask slot, or None off the volume
                let mut col: [Option<(*const f32, usize)>; C] = [None; C];
                for (c, cc) in col.iter_mut().enumerate() {
                    let q = q0 + c;
                    if q >= cols {
                        continue;
                    }
                    let (ch, t) = (q / nt, q % nt);
                    let (td, th, tw) = (t / (g.k[1] * g.k[2]), (t / g.k[2]) % g.k[1], t % g.k[2]);
                    let id = (od + td) as isize - g.p[0] as isize;
                    if id < 0 || id as usize >= g.hi[0] {
                        continue;
                    }
                    let (dh, dw) = (th as isize - g.p[1] as isize, tw as isize - g.p[2] as isize);
                    let off = ((ch * g.hi[0] + id as usize) * plane) as isize + dh * lw as isize + dw;
                    *cc = Some((hi_n.wrapping_offset(off), slot(dh, dw)));
                }
                if col.iter().all(|c| c.is_none()) {
                    continue;
                }
                let mut acc = [[S::zero(); C]; R];
                for v in 0..nvec {
                    let p = v * S::L;
                    let mrow = masks.add(v * SLOTS);
                    let mut bv = [S::zero(); C];
                    for c in 0..C {
                        if let Some((ptr, ms)) = col[c] {
                            bv[c] = S::load_m(S::mask(*mrow.add(ms) as u32), ptr.wrapping_add(p));
                        }
                    }
                    let m_in = S::mask(*mrow.add(slot(0, 0)) as u32);
                    for r in 0..R {
                        let av = S::load_m(m_in, a[r].wrapping_add(p));
                        for c in 0..C {
                            acc[r][c] = S::fma(av, bv[c], acc[r][c]);
                        }
                    }
                }
                for r in 0..R.min(g.c_lo - cl0) {
                    for c in 0..C.min(cols - q0) {
                        *part.add((cl0 + r) * cols + q0 + c) += S::hsum(acc[r][c]);
                    }
                }
            }
        }
        self.slots.release(slot_k);
    }
}

/// dw `[C_lo][C_hi][taps]` (=|+=) the weight gradient, at CPU `level`.
pub fn run(level: Level, g: &Geom, lo: &[f32], hi: &[f32], dw: &mut [f32], acc: bool, ws: &mut [u8]) {
    let l = lanes(level);
    let slots = Slots::count();
    let per = g.c_lo * g.c_hi * taps(g);
    let mut cv = Carve::new(ws);
    let masks = cv.u16s(mask_rows(g.lo[1] * g.lo[2], l) * SLOTS);
    build_masks(g.lo[1], g.lo[2], l, unsafe { std::slice::from_raw_parts_mut(masks, mask_rows(g.lo[1] * g.lo[2], l) * SLOTS) });
    let partial = cv.f32s(slots * per);
    zero(partial, slots * per);
    let job = Job {
        g: *g,
        lo: P::of(lo.as_ptr()),
        hi: P::of(hi.as_ptr()),
        masks: P::of(masks),
        partial: P::of(partial),
        slots: Slots::new(),
    };
    run_tasks(level, g.n * g.lo[0], &job);
    let out = P::of(dw.as_mut_ptr());
    let part = P::of(partial);
    pool().parallel_chunks(per, 256, |s, e| {
        for i in s..e {
            let mut v = 0f32;
            for k in 0..slots {
                v += unsafe { *part.f().add(k * per + i) };
            }
            let d = unsafe { &mut *out.f().add(i) };
            *d = if acc { *d + v } else { v };
        }
    });
}
