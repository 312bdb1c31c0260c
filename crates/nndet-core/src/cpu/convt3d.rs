//! ConvTranspose3d on the CPU (kernel == stride, no padding: every output voxel gets exactly one tap).
//! Shapes: x `[N][Cin][D][H][W]`, w `[Cin][Cout][kd][kh][kw]` (PyTorch's), bias `[Cout]`,
//! y `[N][Cout][D*sd][H*sh][W*sw]`. Mirrors torch.nn.functional.conv_transpose3d.
//! In conv3d/reference.rs terms x is "lo" and y "hi": forward is `adj`, backward-data `corr`, so the fast
//! path reuses conv3d's plane kernels. Arguments were checked by ops::conv.

use crate::cpu::conv3d::reference::Geom;
use crate::cpu::conv3d::{fast, wgrad};
use crate::cpu::features::{level, Level};
use crate::ops::conv::Conv3dParams;

/// Workspace bytes the three convt3d ops need (every level).
pub fn workspace_bytes(p: &Conv3dParams) -> usize {
    fast::all_sizes(&Geom::convt(p))
}

/// Workspace bytes the forward op alone needs (at most `workspace_bytes`).
pub fn workspace_bytes_fwd(p: &Conv3dParams) -> usize {
    fast::pass_bytes(&Geom::convt(p), false)
}

/// y (=|+=) convT(x, w) + bias, at CPU `level`.
pub fn fwd_at(lv: Level, p: &Conv3dParams, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], ws: &mut [u8]) {
    fast::plane_pass(lv, &Geom::convt(p), false, x, w, b, y, p.accumulate(), ws);
}

/// dx (=|+=) d loss / d x: a strided correlation of dy with w, at CPU `level`.
pub fn bwd_data_at(lv: Level, p: &Conv3dParams, dy: &[f32], w: &[f32], dx: &mut [f32], ws: &mut [u8]) {
    fast::plane_pass(lv, &Geom::convt(p), true, dy, w, &[], dx, p.accumulate(), ws);
}

/// dw `[Cin][Cout][k]` (=|+=) d loss / d w; db (=|+=) d loss / d bias when has_bias, at CPU `level`.
pub fn bwd_weight_at(lv: Level, p: &Conv3dParams, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32], ws: &mut [u8]) {
    wgrad::run(lv, &Geom::convt(p), x, dy, dw, p.accumulate(), ws);
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
