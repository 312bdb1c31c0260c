//! Plain reference loops for Conv3d and ConvTranspose3d (fwd, bwd-data, bwd-weight), threaded over the
//! pool, f64 accumulation. They are the test oracle of the fast paths and mirror torch.nn.functional.conv3d
//! / conv_transpose3d exactly (same index formula as PyTorch: hi = lo*s + t - p per axis).
//!
//! Both ops are written over one geometry: a "lo" tensor `[N][C_lo][lo]` and a "hi" tensor `[N][C_hi][hi]`
//! joined by `hi = lo*s + t - p`, and a weight `[C_lo][C_hi][kd][kh][kw]`:
//! - Conv3d:          lo = output y (C_lo = Cout), hi = input x (C_hi = Cin), weight [Cout][Cin][k].
//! - ConvTranspose3d: lo = input x (C_lo = Cin), hi = output y (C_hi = Cout), weight [Cin][Cout][k].
//!
//! Then `corr` is conv fwd / convT bwd-data, `adj` is conv bwd-data / convT fwd, `wgrad` is both bwd-weights.

use crate::ops::conv::Conv3dParams;
use crate::pool::pool;

/// The lo/hi geometry shared by conv and convT.
#[derive(Clone, Copy, Debug)]
pub struct Geom {
    pub n: usize,
    pub c_lo: usize,
    pub c_hi: usize,
    pub lo: [usize; 3],
    pub hi: [usize; 3],
    pub k: [usize; 3],
    pub s: [usize; 3],
    pub p: [usize; 3],
}

impl Geom {
    pub fn conv(p: &Conv3dParams) -> Geom {
        let u = |v: i32| v as usize;
        Geom {
            n: u(p.n),
            c_lo: u(p.cout),
            c_hi: u(p.cin),
            lo: [u(p.od), u(p.oh), u(p.ow)],
            hi: [u(p.d), u(p.h), u(p.w)],
            k: [u(p.kd), u(p.kh), u(p.kw)],
            s: [u(p.sd), u(p.sh), u(p.sw)],
            p: [u(p.pd), u(p.ph), u(p.pw)],
        }
    }
    pub fn convt(p: &Conv3dParams) -> Geom {
        let u = |v: i32| v as usize;
        Geom {
            n: u(p.n),
            c_lo: u(p.cin),
            c_hi: u(p.cout),
            lo: [u(p.d), u(p.h), u(p.w)],
            hi: [u(p.od), u(p.oh), u(p.ow)],
            k: [u(p.kd), u(p.kh), u(p.kw)],
            s: [u(p.sd), u(p.sh), u(p.sw)],
            p: [u(p.pd), u(p.ph), u(p.pw)],
        }
    }
    fn lo_sp(&self) -> usize {
        self.lo[0] * self.lo[1] * self.lo[2]
    }
    fn hi_sp(&self) -> usize {
        self.hi[0] * self.hi[1] * self.hi[2]
    }
    fn taps(&self) -> usize {
        self.k[0] * self.k[1] * self.k[2]
    }
    /// hi index of lo index `o` and tap `t` along axis `a`, if inside.
    fn hi_of(&self, a: usize, o: usize, t: usize) -> Option<usize> {
        let i = (o * self.s[a] + t) as isize - self.p[a] as isize;
        (i >= 0 && (i as usize) < self.hi[a]).then_some(i as usize)
    }
    /// lo index whose tap `t` lands on hi index `i` along axis `a`, if any.
    fn lo_of(&self, a: usize, i: usize, t: usize) -> Option<usize> {
        let q = (i + self.p[a]) as isize - t as isize;
        if q < 0 || !(q as usize).is_multiple_of(self.s[a]) {
            return None;
        }
        let o = q as usize / self.s[a];
        (o < self.lo[a]).then_some(o)
    }
}

/// A raw pointer that tasks writing disjoint ranges may share.
#[derive(Clone, Copy)]
struct Out(*mut f32);
unsafe impl Send for Out {}
unsafe impl Sync for Out {}
impl Out {
    /// SAFETY: each task writes a range no other task touches.
    unsafe fn range(self, start: usize, len: usize) -> &'static mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

/// lo[n][cl][o] (=|+=) sum_{ch,t} hi[n][ch][o*s+t-p] * w[cl][ch][t] (+ bias[cl]).
pub fn corr(g: &Geom, hi: &[f32], w: &[f32], bias: &[f32], lo: &mut [f32], acc: bool) {
    let (lsp, hsp, taps) = (g.lo_sp(), g.hi_sp(), g.taps());
    let out = Out(lo.as_mut_ptr());
    pool().parallel_for(g.n * g.c_lo, |task| {
        let (n, cl) = (task / g.c_lo, task % g.c_lo);
        let dst = unsafe { out.range(task * lsp, lsp) };
        for od in 0..g.lo[0] {
            for oh in 0..g.lo[1] {
                for ow in 0..g.lo[2] {
                    let mut s = bias.get(cl).copied().unwrap_or(0.0) as f64;
                    for ch in 0..g.c_hi {
                        let src = &hi[(n * g.c_hi + ch) * hsp..][..hsp];
                        let wk = &w[(cl * g.c_hi + ch) * taps..][..taps];
                        for td in 0..g.k[0] {
                            let Some(id) = g.hi_of(0, od, td) else { continue };
                            for th in 0..g.k[1] {
                                let Some(ih) = g.hi_of(1, oh, th) else { continue };
                                for tw in 0..g.k[2] {
                                    let Some(iw) = g.hi_of(2, ow, tw) else { continue };
                                    let v = src[(id * g.hi[1] + ih) * g.hi[2] + iw] as f64;
                                    s += v * wk[(td * g.k[1] + th) * g.k[2] + tw] as f64;
                                }
                            }
                        }
                    }
                    let o = (od * g.lo[1] + oh) * g.lo[2] + ow;
                    dst[o] = if acc { (dst[o] as f64 + s) as f32 } else { s as f32 };
                }
            }
        }
    });
}

/// hi[n][ch][i] (=|+=) sum_{cl,o,t: o*s+t-p=i} lo[n][cl][o] * w[cl][ch][t] (+ bias[ch]).
pub fn adj(g: &Geom, lo: &[f32], w: &[f32], bias: &[f32], hi: &mut [f32], acc: bool) {
    let (lsp, hsp, taps) = (g.lo_sp(), g.hi_sp(), g.taps());
    let out = Out(hi.as_mut_ptr());
    pool().parallel_for(g.n * g.c_hi, |task| {
        let (n, ch) = (task / g.c_hi, task % g.c_hi);
        let dst = unsafe { out.range(task * hsp, hsp) };
        for id in 0..g.hi[0] {
            for ih in 0..g.hi[1] {
                for iw in 0..g.hi[2] {
                    let mut s = bias.get(ch).copied().unwrap_or(0.0) as f64;
                    for cl in 0..g.c_lo {
                        let src = &lo[(n * g.c_lo + cl) * lsp..][..lsp];
                        let wk = &w[(cl * g.c_hi + ch) * taps..][..taps];
                        for td in 0..g.k[0] {
                            let Some(od) = g.lo_of(0, id, td) else { continue };
                            for th in 0..g.k[1] {
                                let Some(oh) = g.lo_of(1, ih, th) else { continue };
                                for tw in 0..g.k[2] {
                                    let Some(ow) = g.lo_of(2, iw, tw) else { continue };
                                    let v = src[(od * g.lo[1] + oh) * g.lo[2] + ow] as f64;
                                    s += v * wk[(td * g.k[1] + th) * g.k[2] + tw] as f64;
                                }
                            }
                        }
                    }
                    let i = (id * g.hi[1] + ih) * g.hi[2] + iw;
                    dst[i] = if acc { (dst[i] as f64 + s) as f32 } else { s as f32 };
                }
            }
        }
    });
}

/// dw[cl][ch][t] (=|+=) sum_{n,o} lo[n][cl][o] * hi[n][ch][o*s+t-p].
pub fn wgrad(g: &Geom, lo: &[f32], hi: &[f32], dw: &mut [f32], acc: bool) {
    let (lsp, hsp, taps) = (g.lo_sp(), g.hi_sp(), g.taps());
    let out = Out(dw.as_mut_ptr());
    pool().parallel_for(g.c_lo * g.c_hi, |task| {
        let (cl, ch) = (task / g.c_hi, task % g.c_hi);
        let dst = unsafe { out.range(task * taps, taps) };
        for td in 0..g.k[0] {
            for th in 0..g.k[1] {
                for tw in 0..g.k[2] {
                    let mut s = 0f64;
                    for n in 0..g.n {
                        let a = &lo[(n * g.c_lo + cl) * lsp..][..lsp];
                        let b = &hi[(n * g.c_hi + ch) * hsp..][..hsp];
                        for od in 0..g.lo[0] {
                            let Some(id) = g.hi_of(0, od, td) else { continue };
                            for oh in 0..g.lo[1] {
                                let Some(ih) = g.hi_of(1, oh, th) else { continue };
                                for ow in 0..g.lo[2] {
                                    let Some(iw) = g.hi_of(2, ow, tw) else { continue };
                                    let av = a[(od * g.lo[1] + oh) * g.lo[2] + ow] as f64;
                                    s += av * b[(id * g.hi[1] + ih) * g.hi[2] + iw] as f64;
                                }
                            }
                        }
                    }
                    let t = (td * g.k[1] + th) * g.k[2] + tw;
                    dst[t] = if acc { (dst[t] as f64 + s) as f32 } else { s as f32 };
                }
            }
        }
    });
}

/// db[c] (=|+=) sum_{n, spatial} dy[n][c][...] for dy `[N][C][sp]`.
pub fn bias_grad(n: usize, c: usize, sp: usize, dy: &[f32], db: &mut [f32], acc: bool) {
    let out = Out(db.as_mut_ptr());
    pool().parallel_for(c, |ci| {
        let mut s = 0f64;
        for b in 0..n {
            s += dy[(b * c + ci) * sp..][..sp].iter().map(|&v| v as f64).sum::<f64>();
        }
        let d = unsafe { out.range(ci, 1) };
        d[0] = if acc { (d[0] as f64 + s) as f32 } else { s as f32 };
    });
}
