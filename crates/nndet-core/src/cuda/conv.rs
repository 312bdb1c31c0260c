//! Conv3d and ConvTranspose3d on the device (kernels: cuda/conv.cu, cuda/conv_wgrad.cu, cuda/conv.cuh).
//! Activations and their gradients bf16 NDHWC `[N][D][H][W][C]`; weights fp32 in PyTorch's layouts (Conv3d
//! `[Cout][Cin][kd][kh][kw]`, ConvTranspose3d `[Cin][Cout][kd][kh][kw]`) packed to bf16 by `pack_weights`
//! once per SGD step; weight and bias gradients fp32 in PyTorch's layouts. Parameters as `ops::conv`
//! (`Conv3dParams` from an i32 slice, the same checks and messages), mirroring cpu/conv3d.
//!
//! The kernels work on the lo/hi geometry of cpu/conv3d/reference.rs: `corr` (conv fwd, convT bwd-data),
//! `adj` (conv bwd-data, convT fwd), `wgrad` (both bwd-weights). Pointers are device addresses (u64) of
//! buffers of backend `b`; every one is checked with `span` before a launch. `stream` 0 = default stream.

use super::{call, span, stream_ok, Backend};
use crate::ensure;
use crate::error::NdResult;
use crate::ops::conv::{Conv3dParams, Kind, CONV_PARAMS_LEN};
use std::os::raw::c_void;

/// The geometry block the launchers read on the host (cuda/conv.cuh `NdConvGeom`, same field order): a lo
/// tensor `[n][lo][c_lo]` and a hi tensor `[n][hi][c_hi]` joined per axis by hi = lo*s + t - p, weight
/// `[c_lo][c_hi][k]` (conv: lo = output; convT: lo = input). The launchers take kernel sizes up to 7
/// per axis (odd with p = k/2 for a conv, k = s for a convT); ops::conv's checks admit 1 and 3 (convT 1, 2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: i32,
    pub c_lo: i32,
    pub c_hi: i32,
    pub lo: [i32; 3],
    pub hi: [i32; 3],
    pub k: [i32; 3],
    pub s: [i32; 3],
    pub p: [i32; 3],
    /// fwd: add the bias; wgrad: also reduce the bias gradient
    pub has_bias: i32,
    /// 1: outputs (y, dx, dw, db) are added to
    pub accumulate: i32,
    /// wgrad: split-K count over voxels and bias-gradient chunk count (they size the workspace)
    pub wsplits: i32,
    pub bsplits: i32,
    /// wgrad: the bias gradient sums the hi tensor (convT's dy) instead of the lo one (conv's dy)
    pub bias_of_hi: i32,
}

launchers! {
    pub struct ConvKernels {
        fn conv_pack(w: *const f32, pc: *mut u16, pa: *mut u16, g: *const ConvGeom, stream: *mut c_void);
        fn conv_corr(hi: *const u16, wp: *const u16, bias: *const f32, lo: *mut u16, g: *const ConvGeom, stream: *mut c_void);
        fn conv_adj(lo: *const u16, wp: *const u16, bias: *const f32, hi: *mut u16, g: *const ConvGeom, stream: *mut c_void);
        fn conv_wgrad(lo: *const u16, hi: *const u16, dw: *mut f32, db: *mut f32, ws: *mut f32, g: *const ConvGeom, stream: *mut c_void);
    }
}

/// Split counts of the backward-weight reductions: (GEMM split-K over voxels, bias-gradient chunks).
/// NOTE: about 528 GEMM blocks (4 per SM of a 132-SM H100; the first layer's weight gradient is a single
/// 32 x 128 tile, so its parallelism comes from the splits), each split at least 1024 voxels (32 k-tiles,
/// so the fp32 partial tile stays cheap next to its MMA work), partials at most 64 MiB, at most 1024 splits.
fn plan_splits(g: &ConvGeom) -> (i32, i32) {
    let lo_vox = g.n as u64 * g.lo.iter().map(|&v| v as u64).product::<u64>();
    let hi_vox = g.n as u64 * g.hi.iter().map(|&v| v as u64).product::<u64>();
    let ncol = g.c_hi as u64 * g.k.iter().map(|&v| v as u64).product::<u64>();
    let bm = if g.c_lo <= 32 { 32 } else { 64 }; // cuda/conv_wgrad.cu tile rows
    let tiles = (g.c_lo as u64).div_ceil(bm) * ncol.div_ceil(128);
    let part = g.c_lo as u64 * ncol * 4;
    let w = 528u64.div_ceil(tiles.max(1)).min((lo_vox / 1024).max(1)).min(((64u64 << 20) / part.max(1)).max(1)).min(1024);
    let bvox = if g.bias_of_hi != 0 { hi_vox } else { lo_vox };
    let b = (bvox / 8192).clamp(1, 1024);
    (w as i32, b as i32)
}

impl ConvGeom {
    /// The lo/hi geometry of checked params (lo = conv output / convT input), with the split plan.
    pub fn new(kind: Kind, p: &Conv3dParams) -> ConvGeom {
        let (x, y) = ([p.d, p.h, p.w], [p.od, p.oh, p.ow]);
        let (c_lo, c_hi, lo, hi) = match kind {
            Kind::Conv => (p.cout, p.cin, y, x),
            Kind::ConvT => (p.cin, p.cout, x, y),
        };
        let mut g = ConvGeom {
            n: p.n,
            c_lo,
            c_hi,
            lo,
            hi,
            k: [p.kd, p.kh, p.kw],
            s: [p.sd, p.sh, p.sw],
            p: [p.pd, p.ph, p.pw],
            has_bias: p.has_bias,
            accumulate: p.accumulate,
            wsplits: 1,
            bsplits: 1,
            bias_of_hi: (kind == Kind::ConvT) as i32,
        };
        (g.wsplits, g.bsplits) = plan_splits(&g);
        g
    }

    fn taps(&self) -> usize {
        self.k.iter().map(|&v| v as usize).product()
    }

    /// Workspace bytes `conv_wgrad` needs with this geometry's split counts.
    pub fn wgrad_workspace_bytes(&self) -> usize {
        let cb = if self.bias_of_hi != 0 { self.c_hi } else { self.c_lo } as usize;
        let part = self.wsplits as usize * self.c_lo as usize * self.c_hi as usize * self.taps();
        (part + self.bsplits as usize * cb) * 4
    }
}

fn parse(kind: Kind, params: &[i32]) -> NdResult<Conv3dParams> {
    match kind {
        Kind::Conv => Conv3dParams::from_slice(params),
        Kind::ConvT => Conv3dParams::from_slice_t(params),
    }
}

/// Checked params and their device geometry. NOTE: the kernels index voxels (N * D * H * W of either
/// tensor) with 32-bit integers; element offsets are 64-bit.
fn geom(kind: Kind, params: &[i32]) -> NdResult<(Conv3dParams, ConvGeom)> {
    let p = parse(kind, params)?;
    let (vin, vout) = (p.n as u64 * p.in_spatial() as u64, p.n as u64 * p.out_spatial() as u64);
    ensure!(vin.max(vout) < 1 << 31, "conv on the device: {} voxels per tensor, at most 2^31 - 1", vin.max(vout));
    Ok((p, ConvGeom::new(kind, &p)))
}

/// Check that a device address holds `elems` elements of `size` bytes (alignment included).
fn buf(b: Backend, addr: u64, elems: usize, size: usize, what: &str) -> NdResult<()> {
    ensure!(addr.is_multiple_of(size as u64), "{what}: device address {addr:#x} is not {size}-byte aligned");
    span(b, addr, (elems * size) as u64, what)
}

/// Elements of one packed bf16 weight copy (the same as the fp32 master).
pub fn packed_len(kind: Kind, params: &[i32]) -> NdResult<usize> {
    Ok(parse(kind, params)?.w_len())
}

/// Workspace bytes `bwd_weight` needs for these params (the other ops need none).
pub fn wgrad_workspace_bytes(kind: Kind, params: &[i32]) -> NdResult<usize> {
    Ok(geom(kind, params)?.1.wgrad_workspace_bytes())
}

/// Pack the fp32 master weight `w` into the bf16 copies `fwd` uses (`w_fwd`) and `bwd_data` uses (`w_bwd`);
/// either address may be 0 (not packed, e.g. inference).
pub fn pack_weights(b: Backend, kind: Kind, params: &[i32], w: u64, w_fwd: u64, w_bwd: u64, stream: u64) -> NdResult<()> {
    let (p, g) = geom(kind, params)?;
    buf(b, w, p.w_len(), 4, "w")?;
    for (a, what) in [(w_fwd, "w_fwd"), (w_bwd, "w_bwd")] {
        if a != 0 {
            buf(b, a, p.w_len(), 2, what)?;
        }
    }
    // corr reads pc, adj reads pa: conv fwd = corr, convT fwd = adj.
    let (pc, pa) = match kind {
        Kind::Conv => (w_fwd, w_bwd),
        Kind::ConvT => (w_bwd, w_fwd),
    };
    let k = ConvKernels::of(b)?;
    call(b, unsafe { (k.conv_pack)(w as *const f32, pc as *mut u16, pa as *mut u16, &g, stream_ok(b, stream)?) }, "conv_pack")
}

/// y (=|+=) conv(x, w) + bias (or convT); `w_fwd` from `pack_weights`, `bias` fp32 [Cout] (0 without bias).
#[allow(clippy::too_many_arguments)]
pub fn fwd(b: Backend, kind: Kind, params: &[i32], x: u64, w_fwd: u64, bias: u64, y: u64, stream: u64) -> NdResult<()> {
    let (p, g) = geom(kind, params)?;
    buf(b, x, p.x_len(), 2, "x")?;
    buf(b, w_fwd, p.w_len(), 2, "w_fwd")?;
    if p.has_bias != 0 {
        buf(b, bias, p.b_len(), 4, "bias")?;
    }
    buf(b, y, p.y_len(), 2, "y")?;
    let k = ConvKernels::of(b)?;
    let (wp, bp, s) = (w_fwd as *const u16, bias as *const f32, stream_ok(b, stream)?);
    match kind {
        Kind::Conv => call(b, unsafe { (k.conv_corr)(x as *const u16, wp, bp, y as *mut u16, &g, s) }, "conv3d_fwd"),
        Kind::ConvT => call(b, unsafe { (k.conv_adj)(x as *const u16, wp, bp, y as *mut u16, &g, s) }, "convt3d_fwd"),
    }
}

/// dx (=|+=) d loss / d x from dy; `w_bwd` from `pack_weights`.
pub fn bwd_data(b: Backend, kind: Kind, params: &[i32], dy: u64, w_bwd: u64, dx: u64, stream: u64) -> NdResult<()> {
    let (p, mut g) = geom(kind, params)?;
    g.has_bias = 0;
    buf(b, dy, p.y_len(), 2, "dy")?;
    buf(b, w_bwd, p.w_len(), 2, "w_bwd")?;
    buf(b, dx, p.x_len(), 2, "dx")?;
    let k = ConvKernels::of(b)?;
    let (wp, s, none) = (w_bwd as *const u16, stream_ok(b, stream)?, std::ptr::null::<f32>());
    match kind {
        Kind::Conv => call(b, unsafe { (k.conv_adj)(dy as *const u16, wp, none, dx as *mut u16, &g, s) }, "conv3d_bwd_data"),
        Kind::ConvT => call(b, unsafe { (k.conv_corr)(dy as *const u16, wp, none, dx as *mut u16, &g, s) }, "convt3d_bwd_data"),
    }
}

/// dw (=|+=) d loss / d w (fp32, PyTorch layout); db (=|+=) d loss / d bias when has_bias (else `db` may be
/// 0). `ws`: at least `wgrad_workspace_bytes` bytes of device scratch.
#[allow(clippy::too_many_arguments)]
pub fn bwd_weight(b: Backend, kind: Kind, params: &[i32], x: u64, dy: u64, dw: u64, db: u64, ws: u64, stream: u64) -> NdResult<()> {
    let (p, g) = geom(kind, params)?;
    bwd_weight_geom(b, kind, &p, g, x, dy, dw, db, ws, stream)
}

/// `bwd_weight` with a given split plan (tests force several).
#[allow(clippy::too_many_arguments)]
fn bwd_weight_geom(
    b: Backend,
    kind: Kind,
    p: &Conv3dParams,
    g: ConvGeom,
    x: u64,
    dy: u64,
    dw: u64,
    db: u64,
    ws: u64,
    stream: u64,
) -> NdResult<()> {
    buf(b, x, p.x_len(), 2, "x")?;
    buf(b, dy, p.y_len(), 2, "dy")?;
    buf(b, dw, p.w_len(), 4, "dw")?;
    if p.has_bias != 0 {
        buf(b, db, p.b_len(), 4, "db")?;
    }
    buf(b, ws, g.wgrad_workspace_bytes() / 4, 4, "workspace")?;
    let (lo, hi) = match kind {
        Kind::Conv => (dy, x),
        Kind::ConvT => (x, dy),
    };
    let k = ConvKernels::of(b)?;
    let what = if kind == Kind::Conv { "conv3d_bwd_weight" } else { "convt3d_bwd_weight" };
    call(
        b,
        unsafe {
            (k.conv_wgrad)(lo as *const u16, hi as *const u16, dw as *mut f32, db as *mut f32, ws as *mut f32, &g, stream_ok(b, stream)?)
        },
        what,
    )
}

/// The i32 slice of params (the inverse of `Conv3dParams::from_slice`), for callers holding the struct.
pub fn params_slice(p: &Conv3dParams) -> [i32; CONV_PARAMS_LEN] {
    [
        p.n, p.cin, p.cout, p.d, p.h, p.w, p.kd, p.kh, p.kw, p.sd, p.sh, p.sw, p.pd, p.ph, p.pw, p.od, p.oh, p.ow,
        p.has_bias, p.accumulate,
    ]
}

#[cfg(test)]
#[path = "conv_tests.rs"]
mod tests;
