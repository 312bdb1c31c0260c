//! Conv3d and ConvTranspose3d on the CPU (one set of kernels; see the NOTE below on how convT maps onto them).
//! Shapes: x `[N][Cin][D][H][W]`, w `[Cout][Cin][kd][kh][kw]`, bias `[Cout]`, y `[N][Cout][OD][OH][OW]`.
//! Arguments were checked by ops::conv. Level (AVX-512 / AVX2 / scalar) from `features::level()`; the
//! `*_at` functions take it explicitly (tests run every level). Kernels (fast.rs picks):
//! - forward and backward-data: plane.rs (vectors along the flattened (h, w) plane, masked taps), or
//!   rowtile.rs for planes up to 16 wide at stride 1 in (h, w) (vectors of output channels, only the taps
//!   inside the volume are multiplied);
//! - backward-weight: wgrad.rs (GEMM over positions on channels-last copies), dot.rs (1x1x1), tapdot.rs
//!   (few input channels, e.g. the first layer);
//! - reference.rs: the plain loops, the test oracle. All scratch lives in the caller's workspace.
//!
//! NOTE: kernels index fixed-size register tiles with const-bounded loops on purpose (they unroll).

#![allow(clippy::needless_range_loop)]

pub mod dot;
pub mod fast;
pub mod layout;
pub mod pack;
pub mod peak;
pub mod plane;
pub mod reference;
pub mod rowtile;
pub mod simd;
pub mod tapdot;
#[cfg(test)]
pub mod tests;
pub mod wgrad;

use crate::cpu::features::Level;
use crate::ops::conv::{Conv3dParams, Kind};
use reference::Geom;

// NOTE: ConvTranspose3d (kernel == stride, no padding; w `[Cin][Cout][k]` as PyTorch's; mirrors
// torch.nn.functional.conv_transpose3d) runs on the same kernels. In reference.rs terms a Conv3d maps "lo"
// (the input) to "hi" (the output) by `corr`; a ConvTranspose3d's input is "lo" and its output "hi", so its
// forward is `adj` and its backward-data `corr`. Hence every function below takes the kind.

fn geom(kind: Kind, p: &Conv3dParams) -> Geom {
    match kind {
        Kind::Conv => Geom::conv(p),
        Kind::ConvT => Geom::convt(p),
    }
}

/// Workspace bytes the three ops of `kind` need (every level).
pub fn workspace_bytes(kind: Kind, p: &Conv3dParams) -> usize {
    fast::all_sizes(&geom(kind, p))
}

/// Workspace bytes the forward op alone needs (at most `workspace_bytes`).
pub fn workspace_bytes_fwd(kind: Kind, p: &Conv3dParams) -> usize {
    fast::pass_bytes(&geom(kind, p), kind == Kind::Conv)
}

/// y (=|+=) conv(x, w) + bias (or convT), at CPU level `lv`.
#[allow(clippy::too_many_arguments)]
pub fn fwd_at(lv: Level, kind: Kind, p: &Conv3dParams, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], ws: &mut [u8]) {
    fast::plane_pass(lv, &geom(kind, p), kind == Kind::Conv, x, w, b, y, p.accumulate(), ws);
}

/// dx (=|+=) d loss / d x, at CPU level `lv`.
pub fn bwd_data_at(lv: Level, kind: Kind, p: &Conv3dParams, dy: &[f32], w: &[f32], dx: &mut [f32], ws: &mut [u8]) {
    fast::plane_pass(lv, &geom(kind, p), kind == Kind::ConvT, dy, w, &[], dx, p.accumulate(), ws);
}

/// dw (=|+=) d loss / d w; db (=|+=) d loss / d bias when has_bias, at CPU level `lv`.
#[allow(clippy::too_many_arguments)]
pub fn bwd_weight_at(
    lv: Level,
    kind: Kind,
    p: &Conv3dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    ws: &mut [u8],
) {
    let g = geom(kind, p);
    // wgrad::run takes (hi-side, lo-side) tensors.
    match kind {
        Kind::Conv => wgrad::run(lv, &g, dy, x, dw, p.accumulate(), ws),
        Kind::ConvT => wgrad::run(lv, &g, x, dy, dw, p.accumulate(), ws),
    }
    if p.has_bias != 0 {
        wgrad::bias_grad(p.n as usize, p.cout as usize, p.out_spatial(), dy, db, p.accumulate());
    }
}
