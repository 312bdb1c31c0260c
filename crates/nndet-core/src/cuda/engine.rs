//! The engine family on the device (cuda/engine_norm.cu, engine.cu; SGD and the SWA average in optim.rs):
//! group/instance norm with a fused activation (forward, backward), activations, add, the learnable scale,
//! the head permute, and the conversions around the network. Safe wrappers over the launchers: they check
//! arguments as src/ops/engine.rs does (same statuses and messages), `span` every buffer, pick the vector
//! width from the pointers' alignment, and launch on `stream` (0 = default stream).
//!
//! Layouts (cuda/common.cuh's contract): activations bf16 NDHWC, statistics / parameters / gradients fp32.
//! Aliasing: buffers indexed alike may be the same buffer (each element is read, then written, by one
//! thread, after any reduction over them has finished) or disjoint, never partially overlapping; the
//! in-place forms that the CPU refuses to accumulate into (dx = x in the norm backward, dx = dy in the
//! activation and scale backward) are refused here too.
//! Workspaces: the norm (`norm_ws_bytes`) and the scale backward (`SCALE_WS_BYTES`) reduce through a
//! caller-provided device scratch, so a training step allocates nothing.

use super::{call, span, stream_ok, Backend};
use crate::ensure;
use crate::error::{NdError, NdResult};
use crate::ops::engine::{act_of, flag, norm_shape, permute_of, NormParams, PermuteParams};
use std::os::raw::{c_int, c_void};

/// Norm geometry and plan as the kernels read it (cuda/engine_norm.cu NdNormGeom).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NormGeom {
    pub s: i64,
    pub n: i32,
    pub c: i32,
    pub groups: i32,
    pub act: i32,
    pub acc_dx: i32,
    pub acc_dp: i32,
    /// channels per load: 8 (C % 8 == 0, activation buffers 16-byte aligned) or 1
    pub vec: i32,
    /// position chunks per image
    pub chunks: i32,
    /// positions per chunk
    pub rows: i32,
    pub eps: f32,
    pub slope: f32,
}

/// Head permute geometry (cuda/engine.cu NdPermGeom).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PermGeom {
    pub s: i64,
    pub y_stride: i64,
    pub y_off: i64,
    pub n: i32,
    pub c: i32,
    pub acc: i32,
    pub pad: i32,
}

launchers! { pub struct EngineKernels {
    fn norm_fwd(x: *const u16, gamma: *const f32, beta: *const f32, y: *mut u16, mean: *mut f32, rstd: *mut f32, ws: *mut f32, p: *const NormGeom, stream: *mut c_void);
    fn norm_bwd(x: *const u16, dy: *const u16, gamma: *const f32, beta: *const f32, mean: *const f32, rstd: *const f32, dx: *mut u16, dgamma: *mut f32, dbeta: *mut f32, ws: *mut f32, p: *const NormGeom, stream: *mut c_void);
    fn act_fwd(x: *const u16, y: *mut u16, n: i64, act: c_int, slope: f32, vec: c_int, stream: *mut c_void);
    fn act_bwd(y: *const u16, dy: *const u16, dx: *mut u16, n: i64, act: c_int, slope: f32, acc: c_int, vec: c_int, stream: *mut c_void);
    fn add(a: *const u16, b: *const u16, y: *mut u16, n: i64, vec: c_int, stream: *mut c_void);
    fn scale_fwd_f32(x: *const f32, scale: *const f32, y: *mut f32, n: i64, vec: c_int, stream: *mut c_void);
    fn scale_fwd_bf16(x: *const u16, scale: *const f32, y: *mut u16, n: i64, vec: c_int, stream: *mut c_void);
    fn scale_bwd(x: *const u16, dy: *const u16, scale: *const f32, dx: *mut u16, dscale: *mut f32, n: i64, acc_dx: c_int, acc_ds: c_int, vec: c_int, ws: *mut f64, stream: *mut c_void);
    fn permute_fwd(x: *const u16, y: *mut f32, p: *const PermGeom, stream: *mut c_void);
    fn permute_bwd(dy: *const f32, dx: *mut u16, p: *const PermGeom, stream: *mut c_void);
    fn f32_to_bf16(x: *const f32, y: *mut u16, n: i64, vec: c_int, stream: *mut c_void);
    fn bf16_to_f32(x: *const u16, y: *mut f32, n: i64, vec: c_int, stream: *mut c_void);
    fn fill(p: *mut c_void, n: i64, word: c_int, bits: u32, stream: *mut c_void);
    fn ncs_to_nsc(x: *const f32, y: *mut u16, n: c_int, c: c_int, s: i64, stream: *mut c_void);
    fn nsc_to_ncs(x: *const u16, y: *mut f32, n: c_int, c: c_int, s: i64, stream: *mut c_void);
} }

/// Threads per block of the norm kernels (cuda/engine_norm.cu NT).
const NT: usize = 256;
/// Most position chunks per image: bounds the norm workspace (N * chunks * C * 8 bytes).
const MAX_CHUNKS: usize = 1024;
/// Bytes of the scale backward's workspace (1024 block partials in double; cuda/engine.cu ND_SCALE_PARTS).
pub const SCALE_WS_BYTES: u64 = 1024 * 8;

/// bf16 bits of an f32, round to nearest even, NaN kept quiet (common.cuh nd_f2bf).
pub fn bf16_bits(f: f32) -> u16 {
    let u = f.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 0x40) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// The f32 value of bf16 bits.
pub fn bf16_value(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// One buffer argument: address, bytes, name, and whether the op writes it.
pub(super) type Arg<'a> = (u64, u64, &'a str, bool);

pub(super) const R: bool = false;
pub(super) const W: bool = true;

/// `span` every buffer, then check that a written buffer and any other are disjoint, or the very same
/// buffer where `alias` names that pair (kernels read each element before the same thread writes it);
/// a partial overlap is refused.
pub(super) fn check_args(b: Backend, args: &[Arg], alias: &[(&str, &str)]) -> NdResult<()> {
    for &(ptr, bytes, what, _) in args {
        span(b, ptr, bytes, what)?;
    }
    for i in 0..args.len() {
        for j in i + 1..args.len() {
            let ((a, la, na, wa), (c, lc, nc, wc)) = (args[i], args[j]);
            if !(wa || wc) || a >= c.saturating_add(lc) || c >= a.saturating_add(la) {
                continue;
            }
            let allowed = alias.iter().any(|&(p, q)| (p, q) == (na, nc) || (q, p) == (na, nc));
            ensure!(allowed && a == c && la == lc, "{na} and {nc} overlap (they must be the same buffer or disjoint)");
        }
    }
    Ok(())
}

pub(super) fn aligned16(ptrs: &[u64]) -> bool {
    ptrs.iter().all(|p| p.is_multiple_of(16))
}

/// (chunks, rows) of the norm kernels for C channels and S positions: a block covers `R = 256 / min(C/V,
/// 256)` rows at a time, ~64 elements per thread, at most MAX_CHUNKS chunks per image. Depends on the
/// shape only (not on the buffers' alignment), so the workspace size does too.
fn norm_plan(c: usize, s: usize) -> (usize, usize) {
    let vec = if c.is_multiple_of(8) { 8 } else { 1 };
    let r = NT / (c / vec).min(NT);
    let mut rows = r * (64 / vec);
    if s.div_ceil(rows) > MAX_CHUNKS {
        rows = s.div_ceil(MAX_CHUNKS).div_ceil(r) * r;
    }
    (s.div_ceil(rows), rows)
}

/// Bytes of device workspace the norm forward and backward need for this geometry.
pub fn norm_ws_bytes(p: &NormParams) -> NdResult<u64> {
    let sh = norm_shape(p)?;
    let (chunks, _) = norm_plan(sh.c, sh.s);
    Ok(8 * (sh.n * chunks * sh.c + sh.n * sh.groups) as u64)
}

fn norm_geom(p: &NormParams, eps: f32, slope: f32, vec: bool) -> NdResult<NormGeom> {
    let sh = norm_shape(p)?;
    ensure!(sh.s <= i64::MAX as usize && sh.n <= 65535, "norm batch {} exceeds the grid's 65535 images", sh.n);
    let (chunks, rows) = norm_plan(sh.c, sh.s);
    ensure!(rows <= i32::MAX as usize, "norm volume of {} positions is too large", sh.s);
    Ok(NormGeom {
        s: sh.s as i64,
        n: p.n,
        c: p.c,
        groups: p.groups,
        act: p.act,
        acc_dx: p.acc_dx,
        acc_dp: p.acc_dparam,
        vec: if vec && sh.c.is_multiple_of(8) { 8 } else { 1 },
        chunks: chunks as i32,
        rows: rows as i32,
        eps,
        slope,
    })
}

/// Norm forward with the fused activation: y = act(norm(x)*gamma + beta), mean/rstd [N*G] saved. y may be x.
#[allow(clippy::too_many_arguments)]
pub fn norm_fwd(
    b: Backend, p: &NormParams, eps: f32, slope: f32, x: u64, gamma: u64, beta: u64, y: u64, mean: u64, rstd: u64,
    ws: u64, stream: u64,
) -> NdResult<()> {
    let sh = norm_shape(p)?;
    act_of(p.act, slope)?;
    ensure!(eps.is_finite() && eps > 0.0, "eps must be finite and > 0, got {eps}");
    let (nb, cb, sb) = (2 * sh.numel() as u64, 4 * sh.c as u64, 4 * (sh.n * sh.groups) as u64);
    let wb = norm_ws_bytes(p)?;
    let args = [(x, nb, "x", R), (gamma, cb, "gamma", R), (beta, cb, "beta", R), (y, nb, "y", W), (mean, sb, "mean", W), (rstd, sb, "rstd", W), (ws, wb, "workspace", W)];
    check_args(b, &args, &[("x", "y")])?;
    let g = norm_geom(p, eps, slope, aligned16(&[x, y]))?;
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: every buffer was checked to hold what the geometry needs; g lives across the call.
    call(b, unsafe { (k.norm_fwd)(x as _, gamma as _, beta as _, y as _, mean as _, rstd as _, ws as _, &g, st) }, "norm_fwd")
}

/// Norm backward through the fused activation: `dy` is the gradient at the activation's output; dx
/// (+)= d/dx (acc_dx), dgamma/dbeta (+)= (acc_dparam). dx may be x (then acc_dx must be 0) or dy.
#[allow(clippy::too_many_arguments)]
pub fn norm_bwd(
    b: Backend, p: &NormParams, slope: f32, x: u64, dy: u64, gamma: u64, beta: u64, mean: u64, rstd: u64, dx: u64,
    dgamma: u64, dbeta: u64, ws: u64, stream: u64,
) -> NdResult<()> {
    let sh = norm_shape(p)?;
    act_of(p.act, slope)?;
    let acc_dx = flag(p.acc_dx, "acc_dx")?;
    flag(p.acc_dparam, "acc_dparam")?;
    ensure!(!(acc_dx && dx == x), "norm backward in place (dx == x) cannot accumulate into dx");
    let (nb, cb, sb) = (2 * sh.numel() as u64, 4 * sh.c as u64, 4 * (sh.n * sh.groups) as u64);
    let wb = norm_ws_bytes(p)?;
    let args = [
        (x, nb, "x", R), (dy, nb, "dy", R), (gamma, cb, "gamma", R), (beta, cb, "beta", R), (mean, sb, "mean", R), (rstd, sb, "rstd", R),
        (dx, nb, "dx", W), (dgamma, cb, "dgamma", W), (dbeta, cb, "dbeta", W), (ws, wb, "workspace", W),
    ];
    check_args(b, &args, &[("x", "dx"), ("dy", "dx")])?;
    let g = norm_geom(p, 1.0, slope, aligned16(&[x, dy, dx]))?;
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: as norm_fwd.
    call(
        b,
        unsafe { (k.norm_bwd)(x as _, dy as _, gamma as _, beta as _, mean as _, rstd as _, dx as _, dgamma as _, dbeta as _, ws as _, &g, st) },
        "norm_bwd",
    )
}

fn count(n: usize, what: &str) -> NdResult<i64> {
    ensure!(n > 0, "{what} of an empty tensor");
    i64::try_from(n).map_err(|_| NdError::invalid(format!("{what}: {n} elements overflow")))
}

/// y = act(x) over n bf16 values; y may be x.
pub fn act_fwd(b: Backend, code: i32, slope: f32, x: u64, y: u64, n: usize, stream: u64) -> NdResult<()> {
    act_of(code, slope)?;
    let m = count(n, "activation")?;
    let nb = 2 * n as u64;
    check_args(b, &[(x, nb, "x", R), (y, nb, "y", W)], &[("x", "y")])?;
    let vec = if aligned16(&[x, y]) { 8 } else { 1 };
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: both buffers hold n bf16.
    call(b, unsafe { (k.act_fwd)(x as _, y as _, m, code, slope, vec, st) }, "act_fwd")
}

/// dx (+)= act'(y) * dy over n bf16 values; dx may be dy when !acc.
#[allow(clippy::too_many_arguments)]
pub fn act_bwd(b: Backend, code: i32, slope: f32, y: u64, dy: u64, dx: u64, n: usize, acc: i32, stream: u64) -> NdResult<()> {
    act_of(code, slope)?;
    let accb = flag(acc, "acc")?;
    let m = count(n, "activation backward")?;
    ensure!(!(accb && dx == dy), "in-place activation backward (dx == dy) cannot accumulate");
    let nb = 2 * n as u64;
    check_args(b, &[(y, nb, "y", R), (dy, nb, "dy", R), (dx, nb, "dx", W)], &[("dy", "dx")])?;
    let vec = if aligned16(&[y, dy, dx]) { 8 } else { 1 };
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: all three hold n bf16.
    call(b, unsafe { (k.act_bwd)(y as _, dy as _, dx as _, m, code, slope, acc, vec, st) }, "act_bwd")
}

/// y = a + b over n bf16 values; y may be a or b.
pub fn add(bk: Backend, a: u64, b: u64, y: u64, n: usize, stream: u64) -> NdResult<()> {
    let m = count(n, "add")?;
    let nb = 2 * n as u64;
    check_args(bk, &[(a, nb, "a", R), (b, nb, "b", R), (y, nb, "y", W)], &[("a", "y"), ("b", "y")])?;
    let vec = if aligned16(&[a, b, y]) { 8 } else { 1 };
    let st = stream_ok(bk, stream)?;
    let k = EngineKernels::of(bk)?;
    // SAFETY: all three hold n bf16.
    call(bk, unsafe { (k.add)(a as _, b as _, y as _, m, vec, st) }, "add")
}

/// Element type of a scaled tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    Bf16,
}

/// y = x * scale[0] (scale: one fp32 on the device) over n values of `elem`; y may be x.
/// NOTE: unlike the CPU, the scale's value is not checked to be finite (that would need a device read).
pub fn scale_fwd(b: Backend, elem: Elem, x: u64, scale: u64, y: u64, n: usize, stream: u64) -> NdResult<()> {
    let m = count(n, "scale")?;
    let nb = n as u64 * if elem == Elem::F32 { 4 } else { 2 };
    check_args(b, &[(x, nb, "x", R), (scale, 4, "scale", R), (y, nb, "y", W)], &[("x", "y")])?;
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    let al = aligned16(&[x, y]);
    // SAFETY: x and y hold n values, scale one fp32.
    match elem {
        Elem::F32 => call(b, unsafe { (k.scale_fwd_f32)(x as _, scale as _, y as _, m, if al { 4 } else { 1 }, st) }, "scale_fwd"),
        Elem::Bf16 => call(b, unsafe { (k.scale_fwd_bf16)(x as _, scale as _, y as _, m, if al { 8 } else { 1 }, st) }, "scale_fwd"),
    }
}

/// Backward of y = x * scale over n bf16: dx (+)= dy*scale (dx may be dy when !acc_dx), dscale (+)= sum(dy*x)
/// (fp32 on the device). ws: SCALE_WS_BYTES of device scratch.
#[allow(clippy::too_many_arguments)]
pub fn scale_bwd(
    b: Backend, x: u64, dy: u64, scale: u64, dx: u64, dscale: u64, n: usize, acc_dx: i32, acc_ds: i32, ws: u64,
    stream: u64,
) -> NdResult<()> {
    let (accx, _) = (flag(acc_dx, "acc_dx")?, flag(acc_ds, "acc_dscale")?);
    let m = count(n, "scale backward")?;
    ensure!(!(accx && dx == dy), "in-place scale backward (dx == dy) cannot accumulate");
    let nb = 2 * n as u64;
    let args = [(x, nb, "x", R), (dy, nb, "dy", R), (scale, 4, "scale", R), (dx, nb, "dx", W), (dscale, 4, "dscale", W), (ws, SCALE_WS_BYTES, "workspace", W)];
    check_args(b, &args, &[("dy", "dx")])?;
    let vec = if aligned16(&[x, dy, dx]) { 8 } else { 1 };
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: sizes checked above.
    call(
        b,
        unsafe { (k.scale_bwd)(x as _, dy as _, scale as _, dx as _, dscale as _, m, acc_dx, acc_ds, vec, ws as _, st) },
        "scale_bwd",
    )
}

fn perm_geom(p: &PermuteParams) -> NdResult<PermGeom> {
    let (q, acc) = permute_of(p)?;
    ensure!(q.n <= 65535, "permute batch {} exceeds the grid's 65535 images", q.n);
    Ok(PermGeom { s: q.s as i64, y_stride: q.y_stride as i64, y_off: q.y_off as i64, n: p.n, c: p.c, acc: acc as i32, pad: 0 })
}

/// Head permute forward: the conv output x (bf16 [n][s][c]) into fp32 rows y[n*y_stride + y_off + s*c + c']
/// (acc adds).
pub fn permute_fwd(b: Backend, p: &PermuteParams, x: u64, y: u64, stream: u64) -> NdResult<()> {
    let g = perm_geom(p)?;
    let (xb, yb) = (2 * (g.n as i64 * g.s * g.c as i64) as u64, 4 * (g.n as i64 * g.y_stride) as u64);
    check_args(b, &[(x, xb, "x", R), (y, yb, "y", W)], &[])?;
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: sizes checked above.
    call(b, unsafe { (k.permute_fwd)(x as _, y as _, &g, st) }, "permute_fwd")
}

/// Head permute backward: dx (bf16 [n][s][c]) (+)= the fp32 rows of dy.
pub fn permute_bwd(b: Backend, p: &PermuteParams, dy: u64, dx: u64, stream: u64) -> NdResult<()> {
    let g = perm_geom(p)?;
    let (xb, yb) = (2 * (g.n as i64 * g.s * g.c as i64) as u64, 4 * (g.n as i64 * g.y_stride) as u64);
    check_args(b, &[(dy, yb, "dy", R), (dx, xb, "dx", W)], &[])?;
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: sizes checked above.
    call(b, unsafe { (k.permute_bwd)(dy as _, dx as _, &g, st) }, "permute_bwd")
}

/// Flat fp32 -> bf16 (round to nearest even) of n values.
pub fn f32_to_bf16(b: Backend, x: u64, y: u64, n: usize, stream: u64) -> NdResult<()> {
    let m = count(n, "conversion")?;
    check_args(b, &[(x, 4 * n as u64, "x", R), (y, 2 * n as u64, "y", W)], &[])?;
    let vec = if aligned16(&[x, y]) { 8 } else { 1 };
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: sizes checked above.
    call(b, unsafe { (k.f32_to_bf16)(x as _, y as _, m, vec, st) }, "f32_to_bf16")
}

/// Flat bf16 -> fp32 of n values.
pub fn bf16_to_f32(b: Backend, x: u64, y: u64, n: usize, stream: u64) -> NdResult<()> {
    let m = count(n, "conversion")?;
    check_args(b, &[(x, 2 * n as u64, "x", R), (y, 4 * n as u64, "y", W)], &[])?;
    let vec = if aligned16(&[x, y]) { 8 } else { 1 };
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: sizes checked above.
    call(b, unsafe { (k.bf16_to_f32)(x as _, y as _, m, vec, st) }, "bf16_to_f32")
}

/// Set n words of `word_bytes` (2 or 4) at p to `bits` (0: zero a range of bf16 or fp32).
pub fn fill(b: Backend, p: u64, n: usize, word_bytes: usize, bits: u32, stream: u64) -> NdResult<()> {
    ensure!(word_bytes == 2 || word_bytes == 4, "fill word must be 2 or 4 bytes, got {word_bytes}");
    ensure!(word_bytes == 4 || bits <= 0xffff, "fill bits {bits:#x} do not fit a 16-bit word");
    ensure!(p.is_multiple_of(word_bytes as u64), "fill address {p:#x} is not aligned to its {word_bytes}-byte words");
    let m = count(n, "fill")?;
    span(b, p, (n * word_bytes) as u64, "buffer")?;
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: the range was checked.
    call(b, unsafe { (k.fill)(p as _, m, word_bytes as c_int, bits, st) }, "fill")
}

fn layout_dims(n: usize, c: usize, s: usize) -> NdResult<(c_int, c_int, i64, u64)> {
    ensure!(n > 0 && c > 0 && s > 0, "layout conversion sizes must be positive: n={n} c={c} s={s}");
    ensure!(n <= 65535 && c <= 65535 * 32, "layout conversion of n={n} c={c} exceeds the grid");
    let total = n.checked_mul(c).and_then(|v| v.checked_mul(s)).ok_or_else(|| NdError::invalid("layout conversion size overflows"))?;
    Ok((n as c_int, c as c_int, s as i64, total as u64))
}

/// NCDHW fp32 x [n][c][s] -> NDHWC bf16 y [n][s][c] (the input upload; tests).
pub fn ncs_to_nsc(b: Backend, x: u64, y: u64, n: usize, c: usize, s: usize, stream: u64) -> NdResult<()> {
    let (ni, ci, si, t) = layout_dims(n, c, s)?;
    check_args(b, &[(x, 4 * t, "x", R), (y, 2 * t, "y", W)], &[])?;
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: sizes checked above.
    call(b, unsafe { (k.ncs_to_nsc)(x as _, y as _, ni, ci, si, st) }, "ncs_to_nsc")
}

/// NDHWC bf16 x [n][s][c] -> NCDHW fp32 y [n][c][s] (the seg output; tests).
pub fn nsc_to_ncs(b: Backend, x: u64, y: u64, n: usize, c: usize, s: usize, stream: u64) -> NdResult<()> {
    let (ni, ci, si, t) = layout_dims(n, c, s)?;
    check_args(b, &[(x, 2 * t, "x", R), (y, 4 * t, "y", W)], &[])?;
    let st = stream_ok(b, stream)?;
    let k = EngineKernels::of(b)?;
    // SAFETY: sizes checked above.
    call(b, unsafe { (k.nsc_to_ncs)(x as _, y as _, ni, ci, si, st) }, "nsc_to_ncs")
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
