//! ConvTranspose3d on the CPU (kernel == stride, no padding: every output voxel gets exactly one tap).
//! Shapes: x `[N][Cin][D][H][W]`, w `[Cin][Cout][kd][kh][kw]` (PyTorch's), bias `[Cout]`,
//! y `[N][Cout][D*sd][H*sh][W*sw]`. Mirrors torch.nn.functional.conv_transpose3d.
//! Arguments were checked by ops::conv.

use crate::cpu::conv3d::reference::{self, Geom};
use crate::ops::conv::Conv3dParams;

/// Workspace bytes the three convt3d ops need.
pub fn workspace_bytes(_p: &Conv3dParams) -> usize {
    0
}

/// y (=|+=) convT(x, w) + bias.
pub fn fwd(p: &Conv3dParams, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], _ws: &mut [u8]) {
    reference::adj(&Geom::convt(p), x, w, b, y, p.accumulate());
}

/// dx (=|+=) d loss / d x: a strided correlation of dy with w.
pub fn bwd_data(p: &Conv3dParams, dy: &[f32], w: &[f32], dx: &mut [f32], _ws: &mut [u8]) {
    reference::corr(&Geom::convt(p), dy, w, &[], dx, p.accumulate());
}

/// dw `[Cin][Cout][k]` (=|+=) d loss / d w; db (=|+=) d loss / d bias when has_bias.
pub fn bwd_weight(p: &Conv3dParams, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32], _ws: &mut [u8]) {
    reference::wgrad(&Geom::convt(p), x, dy, dw, p.accumulate());
    if p.has_bias != 0 {
        reference::bias_grad(p.n as usize, p.cout as usize, p.out_spatial(), dy, db, p.accumulate());
    }
}
