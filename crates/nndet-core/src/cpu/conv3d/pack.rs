//! The copies the weight gradient (wgrad.rs) reads: a channels-last, phase-split copy with a zero halo
//! (`pack_cl`: an in-register 16 x 16 transpose on AVX-512, a stack tile otherwise) and a plain
//! phase-split copy with a zero halo (`pack_pad`). Every element of the destination is written.

use super::layout::P;
use super::reference::Geom;
use super::simd::{run_tasks, Simd, Task};
use super::wgrad::{halo_plane, nph};
use crate::cpu::features::Level;
use crate::pool::pool;

/// Copy `[N][C][D][H][W]` phase-split into `[N][D][ph][LO_h+2*halo][LO_w+2*halo][cp]` (channels last,
/// zero halo and zero padded channels); (s_h, s_w) = (1, 1) is a plain transpose. 
#[derive(Clone, Copy)]
struct PackCl {
    src: P,
    c: usize,
    dhw: [usize; 3],
    s: [usize; 2],
    lo: [usize; 2],
    halo: usize,
    cp: usize,
    dst: P,
    /// streaming stores (a copy far larger than the caches)
    stream: bool,
}

impl Task for PackCl {
    #[inline(always)]
    unsafe fn exec<S: Simd>(&self, row: usize) {
        let (dhw, s, lo, halo, cp, c) = (self.dhw, self.s, self.lo, self.halo, self.cp, self.c);
        let (hp, wp) = (lo[0] + 2 * halo, lo[1] + 2 * halo);
        let np = s[0] * s[1];
        let sp = dhw[0] * dhw[1] * dhw[2];
        let y = row % hp;
        let ph = (row / hp) % np;
        let id = (row / hp / np) % dhw[0];
        let b = row / hp / np / dhw[0];
        let o = std::slice::from_raw_parts_mut(self.dst.f().add(row * wp * cp), wp * cp);
        let ih = (y as isize - halo as isize) * s[0] as isize + (ph / s[1]) as isize;
        if y < halo || y >= lo[0] + halo || ih as usize >= dhw[1] {
            o.fill(0.0);
            return;
        }
        let aw = ph % s[1];
        let valid = (0..lo[1]).take_while(|&x| x * s[1] + aw < dhw[2]).count();
        o[..halo * cp].fill(0.0);
        o[(valid + halo) * cp..].fill(0.0);
        let base = (self.src.f() as *const f32).add(b * c * sp + (id * dhw[1] + ih as usize) * dhw[2] + aw);
        let out = o.as_mut_ptr();
        #[cfg(target_arch = "x86_64")]
        if S::L == 16 && cp % 16 == 0 && s[1] <= 2 {
            // S is Avx512 here, so the CPU has AVX-512.
            t16::pack_row(base, sp, c, valid, s[1], dhw[2] - aw, out.add(halo * cp), cp, self.stream);
            return;
        }
        // NOTE: through a 16 x 16 tile on the stack: contiguous reads along the row per channel, contiguous
        // writes along the channels per position (strided scalar stores into a large buffer are slow).
        let mut tile = [[0f32; 16]; 16];
        for x0 in (0..valid).step_by(16) {
            let xn = (valid - x0).min(16);
            for c0 in (0..cp).step_by(16) {
                let cn = c.saturating_sub(c0).min(16);
                for (k, t) in tile.iter_mut().enumerate().take(16) {
                    if k < cn {
                        let src = base.add((c0 + k) * sp + x0 * s[1]);
                        for (x, v) in t.iter_mut().enumerate().take(xn) {
                            *v = *src.add(x * s[1]);
                        }
                    } else {
                        *t = [0.0; 16];
                    }
                }
                let cw = (cp - c0).min(16);
                for x in 0..xn {
                    let dst = out.add((x0 + x + halo) * cp + c0);
                    for (k, t) in tile.iter().enumerate().take(cw) {
                        *dst.add(k) = t[x];
                    }
                }
            }
        }
    }
}

/// AVX-512 channels-last packing of one row: 16 channels x 16 positions per in-register transpose.
#[cfg(target_arch = "x86_64")]
mod t16 {
    use std::arch::x86_64::*;

    /// Transpose 16 rows of 16 lanes in place.
    #[inline(always)]
    unsafe fn transpose(r: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_ps(); 16];
        let (lo, hi) = (|a: __m512, b: __m512| _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))),
                        |a: __m512, b: __m512| _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))));
        for i in 0..4 {
            u[4 * i] = lo(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = hi(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = lo(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = hi(t[4 * i + 1], t[4 * i + 3]);
        }
        // u[4i + j] holds rows 4i..4i+3 of columns j, j+4, j+8, j+12 (one per 128-bit lane)
        for j in 0..4 {
            let v0 = _mm512_shuffle_f32x4::<0x44>(u[j], u[4 + j]);
            let v1 = _mm512_shuffle_f32x4::<0xEE>(u[j], u[4 + j]);
            let v2 = _mm512_shuffle_f32x4::<0x44>(u[8 + j], u[12 + j]);
            let v3 = _mm512_shuffle_f32x4::<0xEE>(u[8 + j], u[12 + j]);
            r[j] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
            r[j + 4] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
            r[j + 8] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
            r[j + 12] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
        }
    }

    /// out[x*cp + ch] = src[ch*sp + x*step] for x < valid, ch < c (0 for ch in c..cp); `avail` source
    /// elements are readable from src along the row; step is 1 or 2.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pack_row(src: *const f32, sp: usize, c: usize, valid: usize, step: usize, avail: usize, out: *mut f32, cp: usize, stream: bool) {
        // streaming stores need 64-byte aligned destinations
        let stream = stream && (out as usize).is_multiple_of(64);
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for x0 in (0..valid).step_by(16) {
            let xn = (valid - x0).min(16);
            for c0 in (0..cp).step_by(16) {
                let mut r = [_mm512_setzero_ps(); 16];
                for (k, rk) in r.iter_mut().enumerate() {
                    if c0 + k >= c {
                        break;
                    }
                    let p = src.add((c0 + k) * sp + x0 * step);
                    let left = avail - x0 * step;
                    let m = |off: usize| -> __mmask16 {
                        let n = left.saturating_sub(off).min(16);
                        ((1u32 << n) - 1) as __mmask16
                    };
                    *rk = if step == 1 {
                        _mm512_maskz_loadu_ps(m(0), p)
                    } else {
                        let a = _mm512_maskz_loadu_ps(m(0), p);
                        let b = _mm512_maskz_loadu_ps(m(16), p.wrapping_add(16));
                        _mm512_permutex2var_ps(a, even, b)
                    };
                }
                transpose(&mut r);
                for (x, rx) in r.iter().enumerate().take(xn) {
                    if stream {
                        _mm512_stream_ps(out.add((x0 + x) * cp + c0), *rx);
                    } else {
                        _mm512_storeu_ps(out.add((x0 + x) * cp + c0), *rx);
                    }
                }
            }
        }
        if stream {
            // order the streaming stores before the pass that reads the copy
            _mm_sfence();
        }
    }
}

/// Copies larger than this are written with streaming stores (they outgrow L3 before they are read).
#[cfg(not(test))]
const STREAM_BYTES: usize = 48 << 20;
/// Small in the tests, so they cover both kinds of store.
#[cfg(test)]
const STREAM_BYTES: usize = 64 << 10;

#[allow(clippy::too_many_arguments)]
pub fn pack_cl(level: Level, src: &[f32], n: usize, c: usize, dhw: [usize; 3], s: [usize; 2], lo: [usize; 2], halo: usize, cp: usize, dst: *mut f32) {
    let rows = n * dhw[0] * s[0] * s[1] * (lo[0] + 2 * halo);
    // NOTE: measured at 32 ch 64^3 stride 2 (a 75 MB copy): streaming stores skip reading the destination
    let stream = rows * (lo[1] + 2 * halo) * cp * 4 > STREAM_BYTES;
    let t = PackCl { src: P::of(src.as_ptr()), c, dhw, s, lo, halo, cp, dst: P::of(dst), stream };
    run_tasks(level, rows, &t);
}

/// Copy hi `[N][C][D][H][W]` phase-split with a zero halo: `[N][C][D][ph][LO_h+2][LO_w+2]`.
pub fn pack_pad(g: &Geom, src: &[f32], dst: *mut f32) {
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
