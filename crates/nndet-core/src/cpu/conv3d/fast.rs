//! Glue of the fast conv path: workspace layouts, repacks, and the calls into plane.rs (corr/adj) and
//! wgrad.rs, for a given CPU level (tests call every level; production uses `features::level()`).

use super::layout::{self, build_masks, mask_rows, pack_weights, phase_split, Carve, Sizes, P, SLOTS};
use super::plane::{self, Pass};
use super::reference::Geom;
use super::simd::lanes;
use crate::cpu::features::Level;

fn taps(g: &Geom) -> usize {
    g.k[0] * g.k[1] * g.k[2]
}

fn strided_hw(g: &Geom) -> bool {
    g.s[1] * g.s[2] > 1
}

/// Byte sizes of the buffers a corr (lo <- hi) or adj (hi <- lo) pass carves, valid for every level.
pub fn plane_sizes(g: &Geom, corr: bool) -> Sizes {
    let (c_out, c_red) = if corr { (g.c_lo, g.c_hi) } else { (g.c_hi, g.c_lo) };
    let plane = g.lo[1] * g.lo[2];
    let split = if corr && strided_hw(g) { g.n * g.c_hi * slab(g).1 * g.s[1] * g.s[2] * plane * 4 } else { 0 };
    [(c_out + 32) * c_red * taps(g) * 4, mask_rows(plane, 1) * SLOTS * 2, split, 0]
}

/// Bytes of phase-split input a slab of the corr pass at stride 2 in h/w may hold.
/// NOTE: split and read back slab by slab, the split stays in L3 (at 32 ch 64^3 the whole split is 64 MiB,
/// and writing it out and reading it back cost ~15% of the forward).
#[cfg(not(test))]
const SLAB_BYTES: usize = 8 << 20;
/// Small in the tests, so they cover many slabs (of one and of several output d-slices).
#[cfg(test)]
const SLAB_BYTES: usize = 16 << 10;

/// Output d-slices per slab, and the most hi d-slices a slab reads.
pub fn slab(g: &Geom) -> (usize, usize) {
    let per = g.n * g.c_hi * g.s[1] * g.s[2] * g.lo[1] * g.lo[2] * 4;
    let fit = SLAB_BYTES / per.max(1);
    let od = if fit <= g.k[0] { 1 } else { ((fit - g.k[0]) / g.s[0] + 1).min(g.lo[0]) };
    (od, ((od - 1) * g.s[0] + g.k[0]).min(g.hi[0]))
}

/// corr: lo (=|+=) corr(hi, w) + bias (Conv3d forward, ConvTranspose3d backward-data).
/// adj: hi (=|+=) adj(lo, w) + bias (Conv3d backward-data, ConvTranspose3d forward).
#[allow(clippy::too_many_arguments)]
pub fn plane_pass(level: Level, g: &Geom, corr: bool, src: &[f32], w: &[f32], bias: &[f32], out: &mut [f32], acc: bool, ws: &mut [u8]) {
    let plane = g.lo[1] * g.lo[2];
    let c_out = if corr { g.c_lo } else { g.c_hi };
    if use_rows(g, corr) {
        return row_pass(level, g, corr, src, w, bias, out, acc, ws);
    }
    let shape = plane::choose(level, c_out, plane.div_ceil(lanes(level)));
    plane_pass_shape(level, shape, g, corr, src, w, bias, out, acc, ws)
}


/// Narrow planes (w up to 16; measured: at 32 no gain, at 64 slower) with w-shifted taps go to
/// rowtile.rs (plane.rs would multiply many masked-off lanes).
pub fn use_rows(g: &Geom, corr: bool) -> bool {
    let c_red = if corr { g.c_hi } else { g.c_lo };
    g.s[1] == 1 && g.s[2] == 1 && g.k[2] == 3 && g.lo[2] <= 16 && c_red >= 16
}

/// `plane_pass` through rowtile.rs (stride 1 in h and w).
#[allow(clippy::too_many_arguments)]
pub fn row_pass(level: Level, g: &Geom, corr: bool, src: &[f32], w: &[f32], bias: &[f32], out: &mut [f32], acc: bool, ws: &mut [u8]) {
    let gw = super::rowtile::cv(level) * lanes(level);
    let c_out = if corr { g.c_lo } else { g.c_hi };
    let c_red = if corr { g.c_hi } else { g.c_lo };
    let wpk = Carve::new(ws).f32s(c_out.div_ceil(gw) * gw * c_red * taps(g));
    super::rowtile::pack(g, w, corr, gw, wpk);
    super::rowtile::run(super::rowtile::Pass {
        g: *g,
        level,
        corr,
        src: P::of(src.as_ptr()),
        wpk: P::of(wpk),
        out: P::of(out.as_mut_ptr()),
        bias: P::of(bias.as_ptr()),
        has_bias: !bias.is_empty(),
        acc,
        gw,
    });
}

/// `plane_pass` with a given (G, NV) tile shape from `plane::shapes(level)` (tests run every one).
#[allow(clippy::too_many_arguments)]
pub fn plane_pass_shape(
    level: Level, (gw, nv): (usize, usize), g: &Geom, corr: bool, src: &[f32], w: &[f32], bias: &[f32],
    out: &mut [f32], acc: bool, ws: &mut [u8],
) {
    let l = lanes(level);
    let plane = g.lo[1] * g.lo[2];
    let c_out = if corr { g.c_lo } else { g.c_hi };
    let mut cv = Carve::new(ws);
    let (c_red, t) = (if corr { g.c_hi } else { g.c_lo }, taps(g));
    let wpk = cv.f32s(c_out.div_ceil(gw) * gw * c_red * t);
    let masks = cv.u16s(mask_rows(plane, l) * SLOTS);
    pack_weights(g, w, corr, gw, wpk);
    build_masks(g.lo[1], g.lo[2], l, unsafe { std::slice::from_raw_parts_mut(masks, mask_rows(g.lo[1] * g.lo[2], l) * SLOTS) });
    let pass = Pass {
        g: *g,
        level,
        corr,
        src: P::of(src.as_ptr()),
        split: false,
        od0: 0,
        od_n: if corr { g.lo[0] } else { g.hi[0] },
        sd0: 0,
        sdn: g.hi[0],
        wpk: P::of(wpk),
        masks: P::of(masks),
        out: P::of(out.as_mut_ptr()),
        bias: P::of(bias.as_ptr()),
        has_bias: !bias.is_empty(),
        acc,
        gw,
        nv,
    };
    if !(corr && strided_hw(g)) {
        return plane::run(pass);
    }
    let (slab_od, slab_d) = slab(g);
    let ph = cv.f32s(g.n * g.c_hi * slab_d * g.s[1] * g.s[2] * plane);
    for od0 in (0..g.lo[0]).step_by(slab_od) {
        let od_n = slab_od.min(g.lo[0] - od0);
        // hi d-slices the slab reads: o*s + t - p for o in od0..od0 + od_n, t < k, inside hi
        let sd0 = (od0 * g.s[0]).saturating_sub(g.p[0]);
        let sdn = (((od0 + od_n - 1) * g.s[0] + g.k[0]).saturating_sub(g.p[0])).min(g.hi[0]) - sd0;
        phase_split(level, g, g.c_hi, (sd0, sdn), src, ph);
        plane::run(Pass { src: P::of(ph), split: true, od0, od_n, sd0, sdn, ..pass });
    }
}

/// Bytes of workspace for a pass list: the maximum over passes of its carved size.
pub fn ws_bytes(passes: &[Sizes]) -> usize {
    passes.iter().map(|b| layout::carve_size(b)).max().unwrap_or(0)
}

/// Workspace bytes covering every op (corr, adj, weight gradient) at every CPU level.
/// Workspace bytes of one plane pass alone (`corr`: the correlation pass of Conv3d forward / the adjoint pass
/// of ConvTranspose3d forward), for callers that only run forward (inference).
pub fn pass_bytes(g: &Geom, corr: bool) -> usize {
    ws_bytes(&[plane_sizes(g, corr)])
}

pub fn all_sizes(g: &Geom) -> usize {
    ws_bytes(&[
        plane_sizes(g, true),
        plane_sizes(g, false),
        super::wgrad::sizes(Level::Scalar, g),
        super::wgrad::sizes(Level::Avx2, g),
        super::wgrad::sizes(Level::Avx512, g),
    ])
}
