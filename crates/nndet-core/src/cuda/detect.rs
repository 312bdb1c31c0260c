//! Detection kernels on the device (cuda/detect_*.cu): box primitives, anchors, the box coder, ATSS, NMS,
//! WBC, top-k selection (post-processing candidates, the hard-negative pool), the per-patch post-processing
//! and the losses, mirroring `cpu/detect/*` with the same f32/int32 layouts. Each safe wrapper checks
//! sizes and parameters with the CPU op's checks (`ops/detect.rs`), checks every device range with `span`,
//! and launches asynchronously on `stream`; results (counts and losses too) stay on the device.
//!
//! NOTE: value checks of the CPU ops (NaN scores, non-finite or inverted boxes, label ranges) would need a
//! download, so on the device they are the caller's preconditions; kernels stay memory-safe regardless
//! (sampled indices outside the anchors are skipped, all other indexing is by sizes checked here).
//! Workspaces are caller-owned device buffers of `*_workspace_bytes` bytes. Limits: NMS/WBC n <= NMS_MAX
//! (the mask alone takes n * ceil(n/64) * 8 bytes), ATSS <= ATSS_KMAX candidates per level and
//! MAX_LEVELS levels, indices below 2^31.
use super::{call, span, stream_ok, Backend};
use crate::error::{NdError, NdResult};
use crate::ops::detect as chk;

mod geom;
mod post;
mod suppress;
mod train;
pub use geom::*;
pub use post::*;
pub use suppress::*;
pub use train::*;

/// Sort tile and limits of cuda/detect_nms.cu and detect_atss.cu.
pub const SORT_TILE: usize = 1024;
pub const NMS_MAX: usize = 2048 * 64;
pub const ATSS_KMAX: usize = 1024;
pub const MAX_LEVELS: usize = 8;
pub(crate) const MAX_SIZES: usize = 96;
pub(crate) const LOSS_MAX_BLOCKS: usize = 256;
pub(crate) const SEG_MAX_BLOCKS: usize = 64;

/// `span` for `n` elements of `elem` bytes; empty ranges are not checked (nothing is read or written).
pub(crate) fn sp(b: Backend, addr: u64, n: usize, elem: usize, what: &str) -> NdResult<()> {
    if n == 0 {
        return Ok(());
    }
    let bytes = n.checked_mul(elem).ok_or_else(|| NdError::invalid(format!("{what}: size overflows")))?;
    span(b, addr, bytes as u64, what)
}

pub(crate) fn i32_count(what: &str, n: usize) -> NdResult<()> {
    crate::ensure!(n <= i32::MAX as usize, "{what}: {n} is more than the device kernels index ({})", i32::MAX);
    Ok(())
}

/// out [n, m] = IoU / GIoU / centre distance of boxes a [n, 6] and b [m, 6] (kind as `ops::detect::pairwise`).
#[allow(clippy::too_many_arguments)]
pub fn pairwise(b: Backend, a: u64, n: usize, bb: u64, m: usize, kind: i32, eps: f32, out: u64, stream: u64) -> NdResult<()> {
    chk::kind_of(kind)?;
    let nm = n.checked_mul(m).ok_or_else(|| NdError::invalid("n*m overflows"))?;
    sp(b, a, n, 24, "boxes1")?;
    sp(b, bb, m, 24, "boxes2")?;
    sp(b, out, nm, 4, "out")?;
    let g = PairGeom { n: n as i64, m: m as i64, kind, eps };
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_pairwise)(a as _, bb as _, out as _, &g, stream_ok(b, stream)?) }, "det_pairwise")
}

/// out [n] = f(a_i, b_i).
#[allow(clippy::too_many_arguments)]
pub fn elementwise(b: Backend, a: u64, bb: u64, n: usize, kind: i32, eps: f32, out: u64, stream: u64) -> NdResult<()> {
    chk::kind_of(kind)?;
    sp(b, a, n, 24, "boxes1")?;
    sp(b, bb, n, 24, "boxes2")?;
    sp(b, out, n, 4, "out")?;
    let g = PairGeom { n: n as i64, m: n as i64, kind, eps };
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_elementwise)(a as _, bb as _, out as _, &g, stream_ok(b, stream)?) }, "det_elementwise")
}

/// Volumes [n] and centres [n, 3] of boxes [n, 6].
pub fn areas_centers(b: Backend, boxes: u64, n: usize, areas: u64, centers: u64, stream: u64) -> NdResult<()> {
    sp(b, boxes, n, 24, "boxes")?;
    sp(b, areas, n, 4, "areas")?;
    sp(b, centers, n, 12, "centers")?;
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_areas_centers)(boxes as _, areas as _, centers as _, n as i64, stream_ok(b, stream)?) }, "det_areas_centers")
}

/// clip_boxes_to_image in place.
pub fn clip(b: Backend, boxes: u64, n: usize, shape: [f32; 3], stream: u64) -> NdResult<()> {
    crate::ensure!(shape.iter().all(|s| s.is_finite() && *s >= 0.0), "clip shape must be finite and >= 0, got {shape:?}");
    sp(b, boxes, n, 24, "boxes")?;
    let g = ClipGeom { n: n as i64, shape };
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_clip)(boxes as _, &g, stream_ok(b, stream)?) }, "det_clip")
}

/// remove_small_boxes: ascending indices of the boxes with every side >= min_size into keep [n], their
/// number into count [1] (on the device).
pub fn remove_small(b: Backend, boxes: u64, n: usize, min_size: f32, keep: u64, count: u64, stream: u64) -> NdResult<()> {
    i32_count("boxes", n)?;
    sp(b, boxes, n, 24, "boxes")?;
    sp(b, keep, n, 4, "keep")?;
    span(b, count, 4, "count")?;
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_remove_small)(boxes as _, n as i64, min_size, keep as _, count as _, stream_ok(b, stream)?) }, "det_remove_small")
}

/// All levels' anchors into out [A, 6] (levels as `ops::detect::anchors_generate`); returns A.
pub fn anchors_generate(b: Backend, desc: &[i32], sizes: &[f32], out: u64, out_len: usize, stream: u64) -> NdResult<usize> {
    let levels = chk::levels_of(desc, sizes)?;
    crate::ensure!(levels.len() <= MAX_LEVELS && sizes.len() <= MAX_SIZES, "the device takes at most {MAX_LEVELS} levels and {MAX_SIZES} sizes");
    let total: usize = levels.iter().map(|l| l.count()).sum();
    chk::need("anchors", out_len, total * 6)?;
    sp(b, out, total, 24, "anchors")?;
    let mut g = AnchorGeom { levels: levels.len() as i32, n_sizes: sizes.len() as i32, sizes: [0.0; MAX_SIZES], lv: [AnchorLevel::default(); MAX_LEVELS] };
    g.sizes[..sizes.len()].copy_from_slice(sizes);
    let (mut start, mut off) = (0usize, 0usize);
    for (l, lv) in levels.iter().enumerate() {
        crate::ensure!(lv.fmap.iter().chain(lv.stride.iter()).all(|&v| v <= i32::MAX as usize), "level {l}: grid too large");
        g.lv[l] = AnchorLevel {
            start: start as i64,
            nw: lv.widths.len() as i32,
            nh: lv.heights.len() as i32,
            nd: lv.depths.len() as i32,
            size_off: off as i32,
            fmap: lv.fmap.map(|v| v as i32),
            stride: lv.stride.map(|v| v as i32),
        };
        start += lv.count();
        off += lv.widths.len() + lv.heights.len() + lv.depths.len();
    }
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_anchors)(out as _, &g, stream_ok(b, stream)?) }, "det_anchors")?;
    Ok(total)
}

/// BoxCoderND.encode_single: deltas out [n, 6] of gt [n, 6] against anchors [n, 6].
pub fn encode(b: Backend, gt: u64, anchors: u64, n: usize, w: &[f32], out: u64, stream: u64) -> NdResult<()> {
    let w = chk::weights_of(w)?;
    for (what, p) in [("gt", gt), ("anchors", anchors), ("out", out)] {
        sp(b, p, n, 24, what)?;
    }
    let g = CoderGeom { n: n as i64, w, clip: 0.0 };
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_encode)(gt as _, anchors as _, out as _, &g, stream_ok(b, stream)?) }, "det_encode")
}

/// BoxCoderND.decode_single with the size clamp `clip`.
#[allow(clippy::too_many_arguments)]
pub fn decode(b: Backend, deltas: u64, anchors: u64, n: usize, w: &[f32], clip: f32, out: u64, stream: u64) -> NdResult<()> {
    let w = chk::weights_of(w)?;
    crate::ensure!(!clip.is_nan(), "decode clip is NaN");
    for (what, p) in [("deltas", deltas), ("anchors", anchors), ("out", out)] {
        sp(b, p, n, 24, what)?;
    }
    let g = CoderGeom { n: n as i64, w, clip };
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_decode)(deltas as _, anchors as _, out as _, &g, stream_ok(b, stream)?) }, "det_decode")
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_train;
