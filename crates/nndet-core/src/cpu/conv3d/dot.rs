//! The weight gradient of 1x1x1, stride-1 convolutions: dw[cl][ch] = sum_{n,pos} lo[n][cl][pos] *
//! hi[n][ch][pos], a GEMM whose reduction runs along the contiguous positions of PyTorch's layout. Register
//! tile: R lo rows x C hi rows of vector partial sums over positions, summed across lanes at the end of
//! each block of positions; so no channels-last copy is needed (wgrad.rs makes one for the other convs).
//! Each pool task takes a range of positions and adds into a claimed partial `[C_lo][C_hi]` (layout::Slots).

use super::layout::{zero, Carve, Sizes, Slots, P};
use super::reference::Geom;
use super::simd::{run_tasks, Simd, Task};
use crate::cpu::features::Level;
use crate::pool::pool;

const R: usize = 4;
const C: usize = 6;
/// Positions per block (between lane sums).
const BLOCK: usize = 2048;

/// Does this geometry take the dot path?
pub fn applies(g: &Geom) -> bool {
    g.k == [1, 1, 1] && g.s == [1, 1, 1]
}

pub fn sizes(g: &Geom) -> Sizes {
    [Slots::count() * g.c_lo * g.c_hi * 4, 0, 0, 0]
}

struct Job {
    g: Geom,
    lo: P,
    hi: P,
    partial: P,
    tasks: usize,
    slots: Slots,
}

impl Task for Job {
    #[inline(always)]
    unsafe fn exec<S: Simd>(&self, task: usize) {
        let g = &self.g;
        let sp = g.lo[0] * g.lo[1] * g.lo[2];
        let total = g.n * sp;
        let (f0, f1) = (task * total / self.tasks, (task + 1) * total / self.tasks);
        let slot = self.slots.claim();
        let part = self.partial.f().add(slot * g.c_lo * g.c_hi);
        let mut f = f0;
        while f < f1 {
            let (n, p0) = (f / sp, f % sp);
            let p1 = (p0 + BLOCK).min(sp).min(p0 + (f1 - f));
            f += p1 - p0;
            let lo = (self.lo.f() as *const f32).add(n * g.c_lo * sp);
            let hi = (self.hi.f() as *const f32).add(n * g.c_hi * sp);
            for cl0 in (0..g.c_lo).step_by(R) {
                let mut a = [lo; R];
                for (r, ar) in a.iter_mut().enumerate() {
                    *ar = lo.add((cl0 + r).min(g.c_lo - 1) * sp);
                }
                for ch0 in (0..g.c_hi).step_by(C) {
                    let mut b = [hi; C];
                    for (c, bc) in b.iter_mut().enumerate() {
                        *bc = hi.add((ch0 + c).min(g.c_hi - 1) * sp);
                    }
                    let mut acc = [[S::zero(); C]; R];
                    let mut p = p0;
                    while p < p1 {
                        let live = (p1 - p).min(S::L);
                        let m = S::mask(((1u64 << live) - 1) as u32);
                        let mut bv = [S::zero(); C];
                        for c in 0..C {
                            bv[c] = S::load_m(m, b[c].add(p));
                        }
                        for r in 0..R {
                            let av = S::load_m(m, a[r].add(p));
                            for c in 0..C {
                                acc[r][c] = S::fma(av, bv[c], acc[r][c]);
                            }
                        }
                        p += S::L;
                    }
                    for r in 0..R.min(g.c_lo - cl0) {
                        for c in 0..C.min(g.c_hi - ch0) {
                            *part.add((cl0 + r) * g.c_hi + ch0 + c) += S::hsum(acc[r][c]);
                        }
                    }
                }
            }
        }
        self.slots.release(slot);
    }
}

/// dw `[C_lo][C_hi]` (=|+=) the weight gradient of a 1x1x1 stride-1 conv or convT, at CPU `level`.
pub fn run(level: Level, g: &Geom, lo: &[f32], hi: &[f32], dw: &mut [f32], acc: bool, ws: &mut [u8]) {
    let slots = Slots::count();
    let per = g.c_lo * g.c_hi;
    let partial = Carve::new(ws).f32s(slots * per);
    zero(partial, slots * per);
    let total = g.n * g.lo[0] * g.lo[1] * g.lo[2];
    let tasks = (4 * slots).min(total.div_ceil(BLOCK)).max(1);
    let job = Job { g: *g, lo: P::of(lo.as_ptr()), hi: P::of(hi.as_ptr()), partial: P::of(partial), tasks, slots: Slots::new() };
    run_tasks(level, tasks, &job);
    let tasks = slots;
    let out = P::of(dw.as_mut_ptr());
    let part = P::of(partial);
    pool().parallel_chunks(per, 256, |s, e| {
        for i in s..e {
            let mut v = 0f32;
            for k in 0..tasks {
                v += unsafe { *part.f().add(k * per + i) };
            }
            let d = unsafe { &mut *out.f().add(i) };
            *d = if acc { *d + v } else { v };
        }
    });
}
