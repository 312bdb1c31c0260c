//! The fast forward-type kernel: output planes computed G channels x NV vectors of positions at a time,
//! vectorised along the flattened (h, w) plane of PyTorch's own layout, as a sum over (tap, input channel)
//! of broadcast weight x masked, shifted input vector. Two drivers (see reference.rs for lo/hi):
//! - `corr` (lo <- hi): Conv3d forward, ConvTranspose3d backward-data. Stride 2 in h/w reads a
//!   phase-split copy of hi, so every tap is a shift by (dh, dw) in {-1,0,1}^2 of a lo-sized plane; the
//!   copy is made and read one slab of output d-slices at a time (fast.rs), so it stays in cache.
//! - `adj` (hi <- lo): Conv3d backward-data, ConvTranspose3d forward. Stride 1: a correlation with the
//!   flipped kernel. Stride 2 in h/w: one pass per output phase (a_h, a_w) with the taps that reach it,
//!   scattered into hi (every other column by vector stores when lo rows are whole vectors).
//!
//! Masks (layout.rs) zero the taps that fall off the plane, so no padded copy is needed.

use super::layout::{slot, P, SLOTS};
use super::reference::Geom;
use super::simd::{run_tasks, Simd, Task};
use crate::cpu::features::Level;

#[derive(Clone, Copy, Default)]
pub struct Tap {
    off: isize,
    w: usize,
    m: usize,
}

/// acc[j][v] = sum over taps, r < cred: wg[tap.w][r][j] * src[tap.off + r*cstride + p0 + v*L] (masked).
#[inline(always)]
unsafe fn tile<S: Simd, const G: usize, const NV: usize>(
    src: *const f32,
    cstride: usize,
    cred: usize,
    taps: &[Tap],
    wg: *const f32,
    masks: *const u16,
    p0: usize,
) -> [[S::V; NV]; G] {
    let mut acc = [[S::zero(); NV]; G];
    for tap in taps {
        let mut m = [S::mask(0); NV];
        for (v, mv) in m.iter_mut().enumerate() {
            *mv = S::mask(*masks.add(v * SLOTS + tap.m) as u32);
        }
        let mut xp = src.wrapping_offset(tap.off + p0 as isize);
        let mut wp = wg.add(tap.w * cred * G);
        for _ in 0..cred {
            let mut xv = [S::zero(); NV];
            for v in 0..NV {
                xv[v] = S::load_m(m[v], xp.wrapping_add(v * S::L));
            }
            for j in 0..G {
                let wj = S::set1(*wp.add(j));
                for v in 0..NV {
                    acc[j][v] = S::fma(wj, xv[v], acc[j][v]);
                }
            }
            xp = xp.wrapping_add(cstride);
            wp = wp.add(G);
        }
    }
    acc
}

/// Everything a corr/adj pass needs; pointers are shared by the tasks (disjoint outputs).
#[derive(Clone, Copy)]
pub struct Pass {
    pub g: Geom,
    pub level: Level,
    /// lo <- hi (corr) or hi <- lo (adj)
    pub corr: bool,
    /// source tensor (hi or its phase split for corr; lo for adj)
    pub src: P,
    /// true when src is a phase split of hi (corr with stride 2 in h/w)
    pub split: bool,
    /// output d-slices of this pass: od0..od0 + od_n (a slab of the output; all of it for adj)
    pub od0: usize,
    pub od_n: usize,
    /// corr: src holds the hi d-slices sd0..sd0 + sdn of each channel (a slab of the split)
    pub sd0: usize,
    pub sdn: usize,
    pub wpk: P,
    pub masks: P,
    pub out: P,
    pub bias: P,
    pub has_bias: bool,
    pub acc: bool,
    pub gw: usize,
    pub nv: usize,
}

struct Job<const G: usize, const NV: usize> {
    p: Pass,
    chunk: usize,
    chunks: usize,
}

impl Pass {
    fn taps(&self) -> usize {
        self.g.k[0] * self.g.k[1] * self.g.k[2]
    }
    fn c_out(&self) -> usize {
        if self.corr { self.g.c_lo } else { self.g.c_hi }
    }
    fn c_red(&self) -> usize {
        if self.corr { self.g.c_hi } else { self.g.c_lo }
    }
    /// Output d-slices a task covers (lo for corr, hi for adj).
    fn out_d(&self) -> usize {
        if self.corr { self.g.lo[0] } else { self.g.hi[0] }
    }
}

impl<const G: usize, const NV: usize> Task for Job<G, NV> {
    #[inline(always)]
    unsafe fn exec<S: Simd>(&self, i: usize) {
        let p = &self.p;
        let g = &p.g;
        let od = p.od0 + i % p.od_n;
        let rest = i / p.od_n;
        let (ch, n) = (rest % self.chunks, rest / self.chunks);
        let (lh, lw) = (g.lo[1], g.lo[2]);
        let plane = lh * lw;
        let nvec = plane.div_ceil(S::L);
        let (taps_n, c_red, c_out) = (p.taps(), p.c_red(), p.c_out());
        let groups = c_out.div_ceil(G);
        let (g0, g1) = (ch * self.chunk, ((ch + 1) * self.chunk).min(groups));
        let mut taps = [Tap::default(); 27];
        let phases = if p.corr { 1 } else { g.s[1] * g.s[2] };
        for ph in 0..phases {
            let (ah, aw) = (ph / g.s[2], ph % g.s[2]);
            let mut nt = 0;
            let (src, cstride);
            if p.corr {
                // source hi index = o*s + q, q = t - p; phase q mod s, shift q div s
                let nph = if p.split { g.s[1] * g.s[2] } else { 1 };
                let dstride = nph * plane;
                cstride = p.sdn * dstride;
                src = (p.src.f() as *const f32).add(n * g.c_hi * cstride);
                for td in 0..g.k[0] {
                    let id = (od * g.s[0] + td) as isize - g.p[0] as isize;
                    if id < 0 || id as usize >= g.hi[0] {
                        continue;
                    }
                    let id = id as usize - p.sd0;
                    debug_assert!(id < p.sdn, "d-slice {id} outside the slab of {}", p.sdn);
                    for th in 0..g.k[1] {
                        let q = th as isize - g.p[1] as isize;
                        let (a1, dh) = (q.rem_euclid(g.s[1] as isize), q.div_euclid(g.s[1] as isize));
                        for tw in 0..g.k[2] {
                            let q = tw as isize - g.p[2] as isize;
                            let (a2, dw) = (q.rem_euclid(g.s[2] as isize), q.div_euclid(g.s[2] as isize));
                            let phase = if p.split { (a1 * g.s[2] as isize + a2) as usize } else { 0 };
                            let off = (id * dstride + phase * plane) as isize + dh * lw as isize + dw;
                            taps[nt] = Tap { off, w: (td * g.k[1] + th) * g.k[2] + tw, m: slot(dh, dw) };
                            nt += 1;
                        }
                    }
                }
            } else {
                // hi index i = j*s + a receives lo index o = j + (a - q)/s when s divides a - q
                cstride = g.lo[0] * plane;
                src = (p.src.f() as *const f32).add(n * g.c_lo * cstride);
                for td in 0..g.k[0] {
                    let q = (od + g.p[0]) as isize - td as isize;
                    if q < 0 || !(q as usize).is_multiple_of(g.s[0]) || q as usize / g.s[0] >= g.lo[0] {
                        continue;
                    }
                    let o_d = q as usize / g.s[0];
                    for th in 0..g.k[1] {
                        let e = ah as isize - (th as isize - g.p[1] as isize);
                        if e.rem_euclid(g.s[1] as isize) != 0 {
                            continue;
                        }
                        let dh = e / g.s[1] as isize;
                        for tw in 0..g.k[2] {
                            let e = aw as isize - (tw as isize - g.p[2] as isize);
                            if e.rem_euclid(g.s[2] as isize) != 0 {
                                continue;
                            }
                            let dw = e / g.s[2] as isize;
                            let off = (o_d * plane) as isize + dh * lw as isize + dw;
                            taps[nt] = Tap { off, w: (td * g.k[1] + th) * g.k[2] + tw, m: slot(dh, dw) };
                            nt += 1;
                        }
                    }
                }
            }
            let taps = &taps[..nt];
            let masks = p.masks.0 as *const u16;
            let contiguous = p.corr || phases == 1;
            let out_plane = if p.corr { plane } else { g.hi[1] * g.hi[2] };
            let out_d = p.out_d();
            for vt in (0..nvec).step_by(NV) {
                let p0 = vt * S::L;
                let mrow = masks.add(vt * SLOTS);
                for cg in g0..g1 {
                    let wg = (p.wpk.f() as *const f32).add(cg * taps_n * c_red * G);
                    let acc = tile::<S, G, NV>(src, cstride, c_red, taps, wg, mrow, p0);
                    for (j, accj) in acc.iter().enumerate() {
                        let co = cg * G + j;
                        if co >= c_out {
                            break;
                        }
                        let b = if p.has_bias { *p.bias.f().add(co) } else { 0.0 };
                        let dst = p.out.f().add(((n * c_out + co) * out_d + od) * out_plane);
                        if contiguous {
                            for (v, &a) in accj.iter().enumerate() {
                                let m = S::mask(*mrow.add(v * SLOTS + slot(0, 0)) as u32);
                                let ptr = dst.wrapping_add(p0 + v * S::L);
                                let mut val = S::add(a, S::set1(b));
                                if p.acc {
                                    val = S::add(val, S::load_m(m, ptr));
                                }
                                S::store_m(m, ptr, val);
                            }
                        } else if g.s[2] == 2 && lw.is_multiple_of(S::L) {
                            // each vector lies in one lo row; its lanes go to every other hi column
                            for v in 0..NV {
                                let q = p0 + v * S::L;
                                let (jr, x0) = (q / lw, (q % lw) * 2 + aw);
                                let y = jr * g.s[1] + ah;
                                if jr >= lh || y >= g.hi[1] || x0 >= g.hi[2] {
                                    continue;
                                }
                                let n = (g.hi[2] - x0).div_ceil(2).min(S::L);
                                S::store_stride2(dst.add(y * g.hi[2] + x0), accj[v], b, n, p.acc);
                            }
                        } else {
                            let mut buf = [[0f32; 16]; NV];
                            for v in 0..NV {
                                S::store(buf[v].as_mut_ptr(), accj[v]);
                            }
                            for v in 0..NV {
                                for l in 0..S::L {
                                    let q = p0 + v * S::L + l;
                                    if q >= plane {
                                        break;
                                    }
                                    let (y, x) = ((q / lw) * g.s[1] + ah, (q % lw) * g.s[2] + aw);
                                    if y < g.hi[1] && x < g.hi[2] {
                                        let o = dst.add(y * g.hi[2] + x);
                                        let val = buf[v][l] + b;
                                        *o = if p.acc { *o + val } else { val };
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The (G, NV) tile shapes each level may use (accumulators + live inputs fit the register file).
pub fn shapes(level: Level) -> &'static [(usize, usize)] {
    match level {
        Level::Avx512 => &[(8, 3), (6, 4), (4, 6), (2, 8), (1, 8)],
        Level::Avx2 => &[(3, 4), (4, 2), (2, 6), (1, 8)],
        Level::Scalar => &[(4, 4), (1, 8)],
    }
}

/// The tile shape with the least padded work for `c_out` channels and `nvec` vectors per plane.
pub fn choose(level: Level, c_out: usize, nvec: usize) -> (usize, usize) {
    let cost = |&(gw, nv): &(usize, usize)| {
        let work = (c_out.div_ceil(gw) * gw * nvec.div_ceil(nv) * nv) as f64;
        work * (1.0 + 4.0 / (gw * nv) as f64)
    };
    *shapes(level).iter().min_by(|a, b| cost(a).total_cmp(&cost(b))).unwrap()
}

/// Run a corr or adj pass (weights packed with `p.gw`, masks built for the lo plane).
pub fn run(p: Pass) {
    let groups = p.c_out().div_ceil(p.gw);
    // Weight groups per task: about 256 KiB of packed weights, so they stay in L2 across the plane.
    let per_group = p.taps() * p.c_red() * p.gw * 4;
    let chunk = (256 * 1024 / per_group.max(1)).clamp(1, groups);
    let chunks = groups.div_ceil(chunk);
    let n = p.g.n * chunks * p.od_n;
    macro_rules! go {
        ($($gw:literal, $nv:literal);*) => {
            match (p.gw, p.nv) {
                $(($gw, $nv) => run_tasks(p.level, n, &Job::<$gw, $nv> { p, chunk, chunks }),)*
                _ => unreachable!("tile shape {:?} not instantiated", (p.gw, p.nv)),
            }
        };
    }
    go!(8, 3; 6, 4; 4, 6; 2, 8; 1, 8; 3, 4; 4, 2; 2, 6; 4, 4);
}
