//! Conv3d on the CPU (and, through the same kernels, ConvTranspose3d: cpu/convt3d.rs).
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

use crate::cpu::features::{level, Level};
use crate::ops::conv::Conv3dParams;
use reference::Geom;

/// Workspace bytes the three conv3d ops need (every level).
pub fn workspace_bytes(p: &Conv3dParams) -> usize {
    fast::all_sizes(&Geom::conv(p))
}

/// Workspace bytes the forward op alone needs (at most `workspace_bytes`).
pub fn workspace_bytes_fwd(p: &Conv3dParams) -> usize {
    fast::pass_bytes(&Geom::conv(p), true)
}

/// y (=|+=) conv(x, w) + bias, at CPU `level`.
pub fn fwd_at(lv: Level, p: &Conv3dParams, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], ws: &mut [u8]) {
    fast::plane_pass(lv, &Geom::conv(p), true, x, w, b, y, p.accumulate(), ws);
}

/// dx (=|+=) d loss / d x, at CPU `level`.
pub fn bwd_data_at(lv: Level, p: &Conv3dParams, dy: &[f32], w: &[f32], dx: &mut [f32], ws: &mut [u8]) {
    fast::plane_pass(lv, &Geom::conv(p), false, dy, w, &[], dx, p.accumulate(), ws);
}

/// dw (=|+=) d loss / d w; db (=|+=) d loss / d bias when has_bias, at CPU `level`.
pub fn bwd_weight_at(lv: Level, p: &Conv3dParams, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32], ws: &mut [u8]) {
    wgrad::run(lv, &Geom::conv(p), dy, x, dw, p.accumulate(), ws);
    if p.has_bias != 0 {
        wgrad::bias_grad(p.n as usize, p.cout as usize, p.out_spatial(), dy, db, p.accumulate());
    }
}

pub fn fwd(p: &Conv3dParams, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], ws: &mut [u8]) {
    fwd_at(level(), p, x, w, b, y, ws)
}
pub fn bwd_data(p: &Conv3dParams, dy: &[f32], w: &[f32], dx: &mut [f32], ws: &mut [u8]) {
    bwd_data_at(level(), p, dy, w, dx, ws)
}
pub fn bwd_weight(p: &Conv3dParams, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32], ws: &mut [u8]) {
    bwd_weight_at(level(), p, x, dy, dw, db, ws)
}
