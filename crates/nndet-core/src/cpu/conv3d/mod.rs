//! Conv3d on the CPU: the plain reference loops (reference.rs, also ConvTranspose3d's) and the dispatch.
//! Shapes: x `[N][Cin][D][H][W]`, w `[Cout][Cin][kd][kh][kw]`, bias `[Cout]`, y `[N][Cout][OD][OH][OW]`.
//! Arguments were checked by ops::conv.

pub mod peak;
pub mod reference;

use crate::ops::conv::Conv3dParams;
use reference::Geom;

/// Workspace bytes the three conv3d ops need.
pub fn workspace_bytes(_p: &Conv3dParams) -> usize {
    0
}

/// y (=|+=) conv(x, w) + bias.
pub fn fwd(p: &Conv3dParams, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], _ws: &mut [u8]) {
    reference::corr(&Geom::conv(p), x, w, b, y, p.accumulate());
}

/// dx (=|+=) d loss / d x.
pub fn bwd_data(p: &Conv3dParams, dy: &[f32], w: &[f32], dx: &mut [f32], _ws: &mut [u8]) {
    reference::adj(&Geom::conv(p), dy, w, &[], dx, p.accumulate());
}

/// dw (=|+=) d loss / d w; db (=|+=) d loss / d bias when has_bias.
pub fn bwd_weight(p: &Conv3dParams, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32], _ws: &mut [u8]) {
    reference::wgrad(&Geom::conv(p), dy, x, dw, p.accumulate());
    if p.has_bias != 0 {
        reference::bias_grad(p.n as usize, p.cout as usize, p.out_spatial(), dy, db, p.accumulate());
    }
}
#[cfg(test)]
pub mod tests;
