//! Workspace carving and the repacks the fast conv kernels read: packed weights, the plane mask table,
//! phase-split planes (stride 2 in h/w), and channels-last copies with a zero halo (bwd-weight).
//!
//! NOTE: every buffer is rewritten in full on each call (the workspace is the caller's scratch and may hold
//! anything), and `Carve` refuses to hand out more than the workspace holds (a panic that guard() reports,
//! never an out-of-bounds write).

use super::reference::Geom;
use crate::cpu::features::Level;
use crate::pool::pool;

pub const ALIGN: usize = 64;

/// Byte sizes of the (at most 4) buffers one pass carves, in carving order (0 = unused).
pub type Sizes = [usize; 4];

/// Bytes a sequence of buffers of these byte sizes needs when carved from an unaligned workspace.
pub fn carve_size(bytes: &[usize]) -> usize {
    ALIGN + bytes.iter().map(|b| b.div_ceil(ALIGN) * ALIGN).sum::<usize>()
}

/// Hands out 64-byte aligned pieces of the caller's workspace.
pub struct Carve {
    at: usize,
    end: usize,
}

impl Carve {
    pub fn new(ws: &mut [u8]) -> Carve {
        let start = ws.as_mut_ptr() as usize;
        Carve { at: start.div_ceil(ALIGN) * ALIGN, end: start + ws.len() }
    }
    fn take(&mut self, bytes: usize) -> usize {
        let p = self.at;
        let next = p + bytes.div_ceil(ALIGN) * ALIGN;
        assert!(next <= self.end, "conv workspace too small for its layout (a bug in workspace_bytes)");
        self.at = next;
        p
    }
    pub fn f32s(&mut self, n: usize) -> *mut f32 {
        self.take(n * 4) as *mut f32
    }
    pub fn u16s(&mut self, n: usize) -> *mut u16 {
        self.take(n * 2) as *mut u16
    }
}

/// A pointer tasks may share (they write disjoint parts).
#[derive(Clone, Copy)]
pub struct P(pub usize);
impl P {
    pub fn of<T>(p: *const T) -> P {
        P(p as usize)
    }
    pub fn f(self) -> *mut f32 {
        self.0 as *mut f32
    }
}

/// Mask slot of a (dh, dw) shift in {-1,0,1}^2; slot 4 is "inside the plane".
pub const fn slot(dh: isize, dw: isize) -> usize {
    ((dh + 1) * 3 + (dw + 1)) as usize
}
pub const SLOTS: usize = 9;
/// Zero rows after the last vector, so a tile may run past the plane's end.
pub const MASK_PAD: usize = 8;

pub fn mask_rows(plane: usize, lanes: usize) -> usize {
    plane.div_ceil(lanes) + MASK_PAD
}

/// masks[v*9 + slot(dh,dw)] bit l: position p = v*L + l is in the (h x w) plane and (h+dh, w+dw) is too.
pub fn build_masks(h: usize, w: usize, lanes: usize, m: &mut [u16]) {
    let plane = h * w;
    let m = &mut m[..mask_rows(plane, lanes) * SLOTS];
    m.fill(0);
    for p in 0..plane {
        let (v, l) = (p / lanes, p % lanes);
        let (ph, pw) = ((p / w) as isize, (p % w) as isize);
        for dh in -1..=1isize {
            for dw in -1..=1isize {
                let (y, x) = (ph + dh, pw + dw);
                if y >= 0 && (y as usize) < h && x >= 0 && (x as usize) < w {
                    m[v * SLOTS + slot(dh, dw)] |= 1 << l;
                }
            }
        }
    }
}

/// Pack weight `[C_lo][C_hi][taps]` as `[group][tap][red][G]` with out = lo channels (out_is_lo) or hi
/// channels; out channels past the end are zero.
pub fn pack_weights(g: &Geom, w: &[f32], out_is_lo: bool, gw: usize, dst: *mut f32) {
    let taps = g.k[0] * g.k[1] * g.k[2];
    let (c_out, c_red) = if out_is_lo { (g.c_lo, g.c_hi) } else { (g.c_hi, g.c_lo) };
    let groups = c_out.div_ceil(gw);
    let per = taps * c_red * gw;
    let d = P::of(dst);
    pool().parallel_for(groups, |cg| {
        let o = unsafe { std::slice::from_raw_parts_mut(d.f().add(cg * per), per) };
        // NOTE: r, j outer and taps inner, so each weight row (all taps of one in/out pair) is read
        // contiguously; the writes of one r stay within a few L1 lines.
        for r in 0..c_red {
            for j in 0..gw {
                let co = cg * gw + j;
                if co >= c_out {
                    for t in 0..taps {
                        o[(t * c_red + r) * gw + j] = 0.0;
                    }
                    continue;
                }
                let src = if out_is_lo { &w[(co * g.c_hi + r) * taps..][..taps] } else { &w[(r * g.c_hi + co) * taps..][..taps] };
                for (t, &v) in src.iter().enumerate() {
                    o[(t * c_red + r) * gw + j] = v;
                }
            }
        }
    });
}

/// Phase-split the d-slices d0..d0 + dn of the hi tensor `[N][C][HI_d][HI_h][HI_w]` into
/// `[N][C][dn][s_h*s_w][LO_h][LO_w]` with ph[..][a_h*s_w + a_w][j][i] = hi[..][j*s_h + a_h][i*s_w + a_w]
/// (0 past the edge).
pub fn phase_split(level: Level, g: &Geom, c: usize, (d0, dn): (usize, usize), hi: &[f32], dst: *mut f32) {
    let (sh, sw) = (g.s[1], g.s[2]);
    let (lh, lw) = (g.lo[1], g.lo[2]);
    let (hh, hw) = (g.hi[1], g.hi[2]);
    let per = sh * sw * lh * lw;
    let d = P::of(dst);
    pool().parallel_for(g.n * c * dn, |s| {
        let o = unsafe { std::slice::from_raw_parts_mut(d.f().add(s * per), per) };
        let src = &hi[((s / dn) * g.hi[0] + d0 + s % dn) * hh * hw..][..hh * hw];
        // Row by source row: one contiguous read, s_w contiguous writes (AVX-512: both columns at once).
        for y in 0..lh * sh {
            let (j, ah) = (y / sh, y % sh);
            #[cfg(target_arch = "x86_64")]
            if level == Level::Avx512 && sw == 2 && y < hh {
                let even = o[ah * 2 * lh * lw + j * lw..].as_mut_ptr();
                let odd = o[(ah * 2 + 1) * lh * lw + j * lw..].as_mut_ptr();
                // SAFETY: AVX-512 was detected (level); the row and both destination rows are in bounds
                unsafe { split_row_512(src[y * hw..][..hw].as_ptr(), hw, even, odd, lw) };
                continue;
            }
            for aw in 0..sw {
                let dst = &mut o[(ah * sw + aw) * lh * lw + j * lw..][..lw];
                if y >= hh {
                    dst.fill(0.0);
                    continue;
                }
                let row = &src[y * hw..][..hw];
                let valid = if hw > aw { (hw - aw).div_ceil(sw).min(lw) } else { 0 };
                if sw == 1 {
                    dst[..valid].copy_from_slice(&row[..valid]);
                } else {
                    for (i, v) in dst[..valid].iter_mut().enumerate() {
                        *v = row[i * 2 + aw];
                    }
                }
                dst[valid..].fill(0.0);
            }
        }
    });
}

/// De-interleave one row of `hw` values into its even and odd columns (`lw` each; 0 past the row's end).
/// NOTE: the scalar loop above compiles to one element at a time; this is ~15% of a stride-2 forward.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn split_row_512(row: *const f32, hw: usize, even: *mut f32, odd: *mut f32, lw: usize) {
    use std::arch::x86_64::*;
    let ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let bits = |n: usize| if n >= 16 { 0xFFFFu16 } else { ((1u32 << n) - 1) as u16 };
    for i0 in (0..lw).step_by(16) {
        let ns = hw.saturating_sub(2 * i0);
        let a = _mm512_maskz_loadu_ps(bits(ns), row.wrapping_add(2 * i0));
        let b = _mm512_maskz_loadu_ps(bits(ns.saturating_sub(16)), row.wrapping_add(2 * i0 + 16));
        let m = bits(lw - i0);
        _mm512_mask_storeu_ps(even.add(i0), m, _mm512_permutex2var_ps(a, ie, b));
        _mm512_mask_storeu_ps(odd.add(i0), m, _mm512_permutex2var_ps(a, io, b));
    }
}

/// Most partial-sum slots a reduction keeps (one per concurrently running task).
pub const MAX_SLOTS: usize = 64;

/// Slots for per-task partial sums: the pool runs at most `threads` tasks at once, so a reduction keeps
/// that many partials and a task claims a free one while it runs (tasks outnumber threads, so the work
/// balances when a core is busy with something else).
pub struct Slots {
    busy: [std::sync::atomic::AtomicBool; MAX_SLOTS],
    n: usize,
}

impl Slots {
    pub fn count() -> usize {
        pool().threads().min(MAX_SLOTS)
    }
    pub fn new() -> Slots {
        Slots { busy: [const { std::sync::atomic::AtomicBool::new(false) }; MAX_SLOTS], n: Self::count() }
    }
    pub fn claim(&self) -> usize {
        use std::sync::atomic::Ordering;
        loop {
            for k in 0..self.n {
                if self.busy[k].compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    return k;
                }
            }
            std::thread::yield_now();
        }
    }
    pub fn release(&self, k: usize) {
        self.busy[k].store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Default for Slots {
    fn default() -> Self {
        Self::new()
    }
}

/// Zero `n` floats at `p` over the pool.
pub fn zero(p: *mut f32, n: usize) {
    let d = P::of(p);
    pool().parallel_chunks(n, 1 << 16, |s, e| unsafe { std::slice::from_raw_parts_mut(d.f().add(s), e - s).fill(0.0) });
}
