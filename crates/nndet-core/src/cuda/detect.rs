//! Detection kernels on the device (cuda/detect_*.cu): box primitives, anchors, the box coder, ATSS, NMS,
//! WBC, top-k selection (post-processing candidates, the hard-negative pool) and the losses, mirroring
//! `cpu/detect/*` with the same f32/int32 layouts. Each safe wrapper checks
//! sizes and parameters with the CPU op's checks (`ops/detect.rs`), checks every device range with `span`,
//! and launches asynchronously on `stream`; results (counts and losses too) stay on the device.
//!
//! NOTE: value checks of the CPU ops (NaN scores, non-finite or inverted boxes, label ranges) would need a
//! download, so on the device they are the caller's preconditions; kernels stay memory-safe regardless
//! (sampled indices outside the anchors are skipped, all other indexing is by sizes checked here).
//! Workspaces are caller-owned device buffers of `*_workspace_bytes` bytes. Limits: NMS/WBC n <= NMS_MAX
//! (the mask alone takes n * ceil(n/64) * 8 bytes), ATSS <= ATSS_KMAX candidates per level and
//! MAX_LEVELS levels, indices below 2^31.
use super::{call, span, Backend};
use crate::error::{NdError, NdResult};
use crate::ops::detect as chk;
use std::os::raw::c_void;

/// Sort tile and limits of cuda/detect_nms.cu and detect_atss.cu.
pub const SORT_TILE: usize = 1024;
pub const NMS_MAX: usize = 2048 * 64;
pub const ATSS_KMAX: usize = 1024;
pub const MAX_LEVELS: usize = 8;
const MAX_SIZES: usize = 96;
const LOSS_MAX_BLOCKS: usize = 256;
const SEG_MAX_BLOCKS: usize = 64;

#[repr(C)]
pub struct PairGeom {
    pub n: i64,
    pub m: i64,
    pub kind: i32,
    pub eps: f32,
}

#[repr(C)]
pub struct ClipGeom {
    pub n: i64,
    pub shape: [f32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct AnchorLevel {
    pub start: i64,
    pub nw: i32,
    pub nh: i32,
    pub nd: i32,
    pub size_off: i32,
    pub fmap: [i32; 3],
    pub stride: [i32; 3],
}

#[repr(C)]
pub struct AnchorGeom {
    pub levels: i32,
    pub n_sizes: i32,
    pub sizes: [f32; MAX_SIZES],
    pub lv: [AnchorLevel; MAX_LEVELS],
}

#[repr(C)]
pub struct CoderGeom {
    pub n: i64,
    pub w: [f32; 6],
    pub clip: f32,
}

#[repr(C)]
#[derive(Default)]
pub struct NmsGeom {
    pub n: i64,
    pub n_pad: i64,
    pub cbn: i32,
    pub wbc: i32,
    pub thr: f32,
    pub score_thr: f32,
    pub boxes: u64,
    pub scores: u64,
    pub labels: u64,
    pub weights: u64,
    pub n_exp: u64,
    pub keys: u64,
    pub sbox: u64,
    pub svol: u64,
    pub slab: u64,
    pub step: u64,
    pub mask: u64,
    pub ranks: u64,
    pub owner: u64,
    pub nkept: u64,
    pub rec_box: u64,
    pub rec_score: u64,
    pub keys2: u64,
    pub keep: u64,
    pub count: u64,
    pub out_boxes: u64,
    pub out_scores: u64,
    pub out_labels: u64,
}

#[repr(C)]
#[derive(Default)]
pub struct AtssGeom {
    pub g: i64,
    pub a: i64,
    pub levels: i32,
    pub k_total: i32,
    pub start: [i64; MAX_LEVELS],
    pub count: [i64; MAX_LEVELS],
    pub k: [i32; MAX_LEVELS],
    pub center_in_gt: i32,
    pub pad_: i32,
    pub gt: u64,
    pub anchors: u64,
    pub matches: u64,
    pub cand: u64,
    pub cand_iou: u64,
    pub best: u64,
}

#[repr(C)]
pub struct BceGeom {
    pub rows: i64,
    pub c: i32,
    pub pad_: i32,
    pub logits: u64,
    pub labels: u64,
    pub grad: u64,
    pub partials: u64,
    pub loss: u64,
}

#[repr(C)]
pub struct GiouGeom {
    pub n: i64,
    pub eps: f64,
    pub pred: u64,
    pub target: u64,
    pub giou: u64,
    pub grad: u64,
    pub partials: u64,
    pub loss: u64,
}

#[repr(C)]
pub struct HeadGeom {
    pub a: i64,
    pub c: i32,
    pub n_pos: i32,
    pub n_neg: i32,
    pub pad_: i32,
    pub w: [f64; 6],
    pub clip: f64,
    pub logits: u64,
    pub deltas: u64,
    pub anchors: u64,
    pub labels: u64,
    pub matched_gt: u64,
    pub pos: u64,
    pub neg: u64,
    pub grad_logits: u64,
    pub grad_deltas: u64,
    pub partials: u64,
    pub losses: u64,
}

#[repr(C)]
pub struct SegGeom {
    pub b: i64,
    pub v: i64,
    pub batch_dice: i32,
    pub nblk: i32,
    pub w_ce: f64,
    pub w_dice: f64,
    pub logits: u64,
    pub target: u64,
    pub grad: u64,
    pub partials: u64,
    pub coef: u64,
    pub losses: u64,
}

#[repr(C)]
#[derive(Default)]
pub struct TopkGeom {
    pub n: i64,
    pub k: i64,
    pub k_pad: i64,
    pub mode: i32,
    pub c: i32,
    pub thr: f32,
    pub pad_: i32,
    pub scores: u64,
    pub labels: u64,
    pub hist: u64,
    pub state: u64,
    pub slot: u64,
    pub keys: u64,
    pub out_scores: u64,
    pub out_idx: u64,
    pub count: u64,
}

// The C side asserts the same sizes (static_assert next to each struct).
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<PairGeom>() == 24 && size_of::<ClipGeom>() == 24);
    assert!(size_of::<AnchorGeom>() == 776 && size_of::<CoderGeom>() == 40);
    assert!(size_of::<NmsGeom>() == 208 && size_of::<AtssGeom>() == 240);
    assert!(size_of::<BceGeom>() == 56 && size_of::<GiouGeom>() == 64);
    assert!(size_of::<HeadGeom>() == 168 && size_of::<SegGeom>() == 88);
    assert!(size_of::<TopkGeom>() == 112);
};

launchers! { pub struct DetectKernels {
    fn det_pairwise(a: *const f32, b: *const f32, out: *mut f32, g: *const PairGeom, stream: *mut c_void);
    fn det_elementwise(a: *const f32, b: *const f32, out: *mut f32, g: *const PairGeom, stream: *mut c_void);
    fn det_areas_centers(b: *const f32, areas: *mut f32, centers: *mut f32, n: i64, stream: *mut c_void);
    fn det_clip(b: *mut f32, g: *const ClipGeom, stream: *mut c_void);
    fn det_remove_small(b: *const f32, n: i64, min_size: f32, keep: *mut i32, count: *mut i32, stream: *mut c_void);
    fn det_anchors(out: *mut f32, g: *const AnchorGeom, stream: *mut c_void);
    fn det_encode(gt: *const f32, anchors: *const f32, out: *mut f32, g: *const CoderGeom, stream: *mut c_void);
    fn det_decode(d: *const f32, anchors: *const f32, out: *mut f32, g: *const CoderGeom, stream: *mut c_void);
    fn det_nms(g: *const NmsGeom, stream: *mut c_void);
    fn det_wbc(g: *const NmsGeom, stream: *mut c_void);
    fn det_atss(g: *const AtssGeom, stream: *mut c_void);
    fn det_bce(g: *const BceGeom, stream: *mut c_void);
    fn det_giou_loss(g: *const GiouGeom, stream: *mut c_void);
    fn det_head_loss(g: *const HeadGeom, stream: *mut c_void);
    fn det_seg_loss(g: *const SegGeom, stream: *mut c_void);
    fn det_topk(g: *const TopkGeom, stream: *mut c_void);
} }

fn st(stream: u64) -> *mut c_void {
    stream as *mut c_void
}

/// `span` for `n` elements of `elem` bytes; empty ranges are not checked (nothing is read or written).
fn sp(b: Backend, addr: u64, n: usize, elem: usize, what: &str) -> NdResult<()> {
    if n == 0 {
        return Ok(());
    }
    let bytes = n.checked_mul(elem).ok_or_else(|| NdError::invalid(format!("{what}: size overflows")))?;
    span(b, addr, bytes as u64, what)
}

fn i32_count(what: &str, n: usize) -> NdResult<()> {
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
    call(b, unsafe { (k.det_pairwise)(a as _, bb as _, out as _, &g, st(stream)) }, "det_pairwise")
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
    call(b, unsafe { (k.det_elementwise)(a as _, bb as _, out as _, &g, st(stream)) }, "det_elementwise")
}

/// Volumes [n] and centres [n, 3] of boxes [n, 6].
pub fn areas_centers(b: Backend, boxes: u64, n: usize, areas: u64, centers: u64, stream: u64) -> NdResult<()> {
    sp(b, boxes, n, 24, "boxes")?;
    sp(b, areas, n, 4, "areas")?;
    sp(b, centers, n, 12, "centers")?;
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_areas_centers)(boxes as _, areas as _, centers as _, n as i64, st(stream)) }, "det_areas_centers")
}

/// clip_boxes_to_image in place.
pub fn clip(b: Backend, boxes: u64, n: usize, shape: [f32; 3], stream: u64) -> NdResult<()> {
    crate::ensure!(shape.iter().all(|s| s.is_finite() && *s >= 0.0), "clip shape must be finite and >= 0, got {shape:?}");
    sp(b, boxes, n, 24, "boxes")?;
    let g = ClipGeom { n: n as i64, shape };
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_clip)(boxes as _, &g, st(stream)) }, "det_clip")
}

/// remove_small_boxes: ascending indices of the boxes with every side >= min_size into keep [n], their
/// number into count [1] (on the device).
pub fn remove_small(b: Backend, boxes: u64, n: usize, min_size: f32, keep: u64, count: u64, stream: u64) -> NdResult<()> {
    i32_count("boxes", n)?;
    sp(b, boxes, n, 24, "boxes")?;
    sp(b, keep, n, 4, "keep")?;
    span(b, count, 4, "count")?;
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_remove_small)(boxes as _, n as i64, min_size, keep as _, count as _, st(stream)) }, "det_remove_small")
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
    call(b, unsafe { (k.det_anchors)(out as _, &g, st(stream)) }, "det_anchors")?;
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
    call(b, unsafe { (k.det_encode)(gt as _, anchors as _, out as _, &g, st(stream)) }, "det_encode")
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
    call(b, unsafe { (k.det_decode)(deltas as _, anchors as _, out as _, &g, st(stream)) }, "det_decode")
}

/// Byte offsets of the NMS/WBC workspace carved from one buffer (16-byte aligned pieces).
struct Carve(u64);

impl Carve {
    fn take(&mut self, base: u64, bytes: usize) -> u64 {
        let at = self.0.div_ceil(16) * 16;
        self.0 = at + bytes as u64;
        base + at
    }
}

fn nms_dims(n: usize) -> (usize, usize) {
    (n.next_power_of_two().max(SORT_TILE), n.div_ceil(64))
}

/// Fill the workspace pointers of `g` from `work`; returns the bytes they need.
fn nms_carve(g: &mut NmsGeom, n: usize, work: u64) -> u64 {
    let (n_pad, cbn) = nms_dims(n);
    let mut c = Carve(0);
    g.keys = c.take(work, n_pad * 8);
    g.sbox = c.take(work, n * 24);
    g.svol = c.take(work, n * 4);
    g.slab = c.take(work, n * 4);
    g.step = c.take(work, 4);
    g.mask = c.take(work, n * cbn * 8);
    g.ranks = c.take(work, n * 4);
    g.owner = c.take(work, n * 4);
    g.nkept = c.take(work, 4);
    g.rec_box = c.take(work, n * 24);
    g.rec_score = c.take(work, n * 4);
    g.keys2 = c.take(work, n_pad * 8);
    c.0
}

/// Workspace bytes of `nms` / `wbc` for n boxes (dominated by the n * ceil(n/64) * 8-byte mask).
pub fn nms_workspace_bytes(n: usize) -> u64 {
    nms_carve(&mut NmsGeom::default(), n, 0)
}

fn nms_setup(b: Backend, n: usize, thr: f32, boxes: u64, scores: u64, work: u64, work_bytes: u64) -> NdResult<NmsGeom> {
    chk::check_thr("IoU threshold", thr)?;
    crate::ensure!(n <= NMS_MAX, "the device NMS takes at most {NMS_MAX} boxes, got {n}");
    sp(b, boxes, n, 24, "boxes")?;
    sp(b, scores, n, 4, "scores")?;
    let mut g = NmsGeom { n: n as i64, thr, boxes, scores, ..Default::default() };
    let need = nms_carve(&mut g, n, work);
    if n > 0 {
        crate::ensure!(work_bytes >= need, "NMS workspace has {work_bytes} bytes, needs {need}");
        span(b, work, need, "workspace")?;
    }
    let (n_pad, cbn) = nms_dims(n);
    g.n_pad = n_pad as i64;
    g.cbn = cbn as i32;
    Ok(g)
}

/// Greedy NMS as `cpu::detect::nms::nms` (labels: nnDetection's class shift; weights: ranked by
/// score * weight as `weighted_nms`). Writes the kept indices in keep order to keep [n] and their number
/// to count [1] (on the device).
#[allow(clippy::too_many_arguments)]
pub fn nms(
    b: Backend,
    boxes: u64,
    scores: u64,
    labels: Option<u64>,
    weights: Option<u64>,
    n: usize,
    thr: f32,
    work: u64,
    work_bytes: u64,
    keep: u64,
    count: u64,
    stream: u64,
) -> NdResult<()> {
    let mut g = nms_setup(b, n, thr, boxes, scores, work, work_bytes)?;
    if let Some(l) = labels {
        sp(b, l, n, 4, "labels")?;
        g.labels = l;
    }
    if let Some(w) = weights {
        sp(b, w, n, 4, "weights")?;
        g.weights = w;
    }
    sp(b, keep, n, 4, "keep")?;
    span(b, count, 4, "count")?;
    g.keep = keep;
    g.count = count;
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_nms)(&g, st(stream)) }, "det_nms")
}

/// Device buffers of `wbc`'s inputs [n] besides the boxes and scores.
pub struct WbcIn {
    pub labels: u64,
    pub weights: u64,
    pub n_exp: u64,
}

/// Device buffers of `wbc`'s outputs: boxes [n, 6], scores [n], labels [n], count [1].
pub struct WbcOut {
    pub boxes: u64,
    pub scores: u64,
    pub labels: u64,
    pub count: u64,
}

/// Weighted box clustering as `cpu::detect::wbc::wbc` (rows grouped by label, then cluster order).
/// NOTE: thr must be < 1 (at thr >= 1 a box does not cluster with itself and the CPU loop never ends).
#[allow(clippy::too_many_arguments)]
pub fn wbc(b: Backend, boxes: u64, scores: u64, x: &WbcIn, n: usize, thr: f32, score_thr: f32, work: u64, work_bytes: u64, out: &WbcOut, stream: u64) -> NdResult<()> {
    if thr >= 1.0 {
        return Err(NdError::invalid(format!("WBC IoU threshold must be < 1 (a box must cluster with itself), got {thr}")));
    }
    chk::check_thr("score threshold", score_thr)?;
    let mut g = nms_setup(b, n, thr, boxes, scores, work, work_bytes)?;
    for (what, p) in [("labels", x.labels), ("weights", x.weights), ("n_exp", x.n_exp), ("out scores", out.scores), ("out labels", out.labels)] {
        sp(b, p, n, 4, what)?;
    }
    sp(b, out.boxes, n, 24, "out boxes")?;
    span(b, out.count, 4, "count")?;
    g.score_thr = score_thr;
    g.labels = x.labels;
    g.weights = x.weights;
    g.n_exp = x.n_exp;
    g.count = out.count;
    g.out_boxes = out.boxes;
    g.out_scores = out.scores;
    g.out_labels = out.labels;
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_wbc)(&g, st(stream)) }, "det_wbc")
}

fn atss_dims(per_level: &[i32], per_loc: i32, num_candidates: i32) -> NdResult<(Vec<usize>, usize)> {
    crate::ensure!(per_loc > 0 && num_candidates > 0, "anchors per location ({per_loc}) and candidates ({num_candidates}) must be positive");
    crate::ensure!(per_level.iter().all(|&c| c >= 0), "anchors per level must be non-negative, got {per_level:?}");
    crate::ensure!(per_level.len() <= MAX_LEVELS, "the device ATSS takes at most {MAX_LEVELS} levels");
    let want = num_candidates as usize * per_loc as usize;
    crate::ensure!(want <= ATSS_KMAX, "the device ATSS takes at most {ATSS_KMAX} candidates per level, got {want}");
    let ks: Vec<usize> = per_level.iter().map(|&c| want.min(c as usize)).collect();
    let kt = ks.iter().sum();
    Ok((ks, kt))
}

/// Workspace bytes of `atss_match` for `g` GT boxes and `a` anchors.
pub fn atss_workspace_bytes(g: usize, a: usize, per_level: &[i32], per_loc: i32, num_candidates: i32) -> NdResult<u64> {
    let (_, kt) = atss_dims(per_level, per_loc, num_candidates)?;
    Ok((g * kt * 8 + a * 4) as u64)
}

/// ATSS matches [A] (GT index or -1) as `cpu::detect::atss::atss_match` on flat anchors [A, 6].
#[allow(clippy::too_many_arguments)]
pub fn atss_match(
    b: Backend,
    gt: u64,
    ng: usize,
    anchors: u64,
    na: usize,
    per_level: &[i32],
    per_loc: i32,
    num_candidates: i32,
    center_in_gt: bool,
    work: u64,
    work_bytes: u64,
    matches: u64,
    stream: u64,
) -> NdResult<()> {
    let (ks, kt) = atss_dims(per_level, per_loc, num_candidates)?;
    let sum: usize = per_level.iter().map(|&c| c as usize).sum();
    crate::ensure!(sum == na, "anchors per level {per_level:?} sum to {sum}, but there are {na} anchors");
    i32_count("anchors", na)?;
    i32_count("candidates", ng.saturating_mul(kt))?;
    sp(b, gt, ng, 24, "gt boxes")?;
    sp(b, anchors, na, 24, "anchors")?;
    sp(b, matches, na, 4, "matches")?;
    let need = (ng * kt * 8 + na * 4) as u64;
    crate::ensure!(work_bytes >= need, "ATSS workspace has {work_bytes} bytes, needs {need}");
    if need > 0 {
        span(b, work, need, "workspace")?;
    }
    let mut g = AtssGeom { g: ng as i64, a: na as i64, levels: per_level.len() as i32, k_total: kt as i32, ..Default::default() };
    let mut lo = 0i64;
    for (l, &c) in per_level.iter().enumerate() {
        g.start[l] = lo;
        g.count[l] = c as i64;
        g.k[l] = ks[l] as i32;
        lo += c as i64;
    }
    g.center_in_gt = center_in_gt as i32;
    g.gt = gt;
    g.anchors = anchors;
    g.matches = matches;
    g.cand = work;
    g.cand_iou = work + (ng * kt * 4) as u64;
    g.best = work + (ng * kt * 8) as u64;
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_atss)(&g, st(stream)) }, "det_atss")
}

/// Workspace bytes of the losses (`bce_loss`, `giou_loss`, `head_loss`).
pub const LOSS_WORKSPACE_BYTES: u64 = (2 * LOSS_MAX_BLOCKS * 4) as u64;

/// BCEWithLogitsLossOneHot(mean) over logits [rows, c], targets [rows] in 0..=c: grad [rows, c]
/// overwritten, loss [1].
#[allow(clippy::too_many_arguments)]
pub fn bce_loss(b: Backend, logits: u64, targets: u64, rows: usize, c: i32, grad: u64, work: u64, loss: u64, stream: u64) -> NdResult<()> {
    crate::ensure!(c > 0, "number of classes must be positive, got {c}");
    crate::ensure!(rows > 0, "BCE of zero rows is undefined (mean over 0 entries)");
    let e = rows.checked_mul(c as usize).ok_or_else(|| NdError::invalid("rows*c overflows"))?;
    sp(b, logits, e, 4, "logits")?;
    sp(b, grad, e, 4, "grad")?;
    sp(b, targets, rows, 4, "targets")?;
    span(b, work, LOSS_WORKSPACE_BYTES, "workspace")?;
    span(b, loss, 4, "loss")?;
    let g = BceGeom { rows: rows as i64, c, pad_: 0, logits, labels: targets, grad, partials: work, loss };
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_bce)(&g, st(stream)) }, "det_bce")
}

/// GIoULoss(sum, eps): giou [n], grad [n, 6] = d(-Σ GIoU)/dpred, loss [1] = -Σ GIoU.
#[allow(clippy::too_many_arguments)]
pub fn giou_loss(b: Backend, pred: u64, target: u64, n: usize, eps: f64, giou: u64, grad: u64, work: u64, loss: u64, stream: u64) -> NdResult<()> {
    sp(b, pred, n, 24, "pred")?;
    sp(b, target, n, 24, "target")?;
    sp(b, giou, n, 4, "giou")?;
    sp(b, grad, n, 24, "grad")?;
    span(b, work, LOSS_WORKSPACE_BYTES, "workspace")?;
    span(b, loss, 4, "loss")?;
    let g = GiouGeom { n: n as i64, eps, pred, target, giou, grad, partials: work, loss };
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_giou_loss)(&g, st(stream)) }, "det_giou_loss")
}

/// Device buffers and sizes of `head_loss` (as `cpu::detect::loss::HeadLossInput`).
pub struct HeadLossArgs {
    pub a: usize,
    pub c: i32,
    pub logits: u64,
    pub deltas: u64,
    pub anchors: u64,
    pub labels: u64,
    pub matched_gt: u64,
    pub pos: u64,
    pub n_pos: usize,
    pub neg: u64,
    pub n_neg: usize,
    pub weights: [f64; 6],
    pub clip: f64,
    pub grad_logits: u64,
    pub grad_deltas: u64,
    pub work: u64,
    /// [2] f32: cls, reg (NaN when there are no sampled rows / no positives).
    pub losses: u64,
}

/// The v001 head loss (BCE over cat(pos, neg) + GIoU of the decoded positives / #pos) with gradients.
pub fn head_loss(b: Backend, x: &HeadLossArgs, stream: u64) -> NdResult<()> {
    crate::ensure!(x.c > 0, "number of classes must be positive");
    i32_count("sampled rows", x.n_pos + x.n_neg)?;
    let ac = x.a.checked_mul(x.c as usize).ok_or_else(|| NdError::invalid("a*c overflows"))?;
    sp(b, x.logits, ac, 4, "logits")?;
    sp(b, x.grad_logits, ac, 4, "grad_logits")?;
    for (what, p) in [("deltas", x.deltas), ("anchors", x.anchors), ("matched_gt", x.matched_gt), ("grad_deltas", x.grad_deltas)] {
        sp(b, p, x.a, 24, what)?;
    }
    sp(b, x.labels, x.a, 4, "labels")?;
    sp(b, x.pos, x.n_pos, 4, "pos")?;
    sp(b, x.neg, x.n_neg, 4, "neg")?;
    span(b, x.work, LOSS_WORKSPACE_BYTES, "workspace")?;
    span(b, x.losses, 8, "losses")?;
    let g = HeadGeom {
        a: x.a as i64,
        c: x.c,
        n_pos: x.n_pos as i32,
        n_neg: x.n_neg as i32,
        pad_: 0,
        w: x.weights,
        clip: x.clip,
        logits: x.logits,
        deltas: x.deltas,
        anchors: x.anchors,
        labels: x.labels,
        matched_gt: x.matched_gt,
        pos: x.pos,
        neg: x.neg,
        grad_logits: x.grad_logits,
        grad_deltas: x.grad_deltas,
        partials: x.work,
        losses: x.losses,
    };
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_head_loss)(&g, st(stream)) }, "det_head_loss")
}

/// Workspace bytes of `seg_loss` for `batch` samples.
pub fn seg_workspace_bytes(batch: usize) -> u64 {
    (batch * SEG_MAX_BLOCKS * 16 + (2 * batch + 1) * 4) as u64
}

/// Fg/bg segmentation loss as `cpu::detect::seg_loss::seg_loss`: logits [B, 2, V], target [B, V];
/// grad [B, 2, V] overwritten, losses [2] f32 = (seg_ce, seg_dice).
#[allow(clippy::too_many_arguments)]
pub fn seg_loss(b: Backend, logits: u64, target: u64, batch: usize, v: usize, batch_dice: bool, w_ce: f64, w_dice: f64, grad: u64, work: u64, losses: u64, stream: u64) -> NdResult<()> {
    crate::ensure!(batch > 0 && v > 0, "target of {v} voxels per sample and {batch} samples is empty");
    crate::ensure!(batch <= 65535, "the device seg loss takes at most 65535 samples");
    let n = batch.checked_mul(v).ok_or_else(|| NdError::invalid("batch*v overflows"))?;
    sp(b, target, n, 4, "target")?;
    sp(b, logits, n, 8, "logits")?;
    sp(b, grad, n, 8, "grad")?;
    let wb = seg_workspace_bytes(batch);
    span(b, work, wb, "workspace")?;
    span(b, losses, 8, "losses")?;
    let partials = work;
    let coef = work + (batch * SEG_MAX_BLOCKS * 16) as u64;
    let g = SegGeom { b: batch as i64, v: v as i64, batch_dice: batch_dice as i32, nblk: 0, w_ce, w_dice, logits, target, grad, partials, coef, losses };
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_seg_loss)(&g, st(stream)) }, "det_seg_loss")
}

fn topk_pad(k: usize) -> usize {
    k.next_power_of_two().max(SORT_TILE)
}

/// Workspace bytes of `top_k` / `hnm_pool` for k kept entries.
pub fn topk_workspace_bytes(k: usize) -> u64 {
    (1024 + 32 + 16 + topk_pad(k) * 8) as u64
}

/// Outputs of the top-k ops: scores [k], indices [k], count [1] = min(k, candidates), on the device.
pub struct TopkOut {
    pub scores: u64,
    pub idx: u64,
    pub count: u64,
}

fn topk_run(b: Backend, mut g: TopkGeom, work: u64, work_bytes: u64, out: &TopkOut, stream: u64) -> NdResult<()> {
    let k = g.k as usize;
    crate::ensure!(k > 0, "top-k needs k > 0");
    i32_count("score count", g.n as usize)?;
    let need = topk_workspace_bytes(k);
    crate::ensure!(work_bytes >= need, "top-k workspace has {work_bytes} bytes, needs {need}");
    span(b, work, need, "workspace")?;
    sp(b, out.scores, k, 4, "out scores")?;
    sp(b, out.idx, k, 4, "out indices")?;
    span(b, out.count, 4, "count")?;
    g.k_pad = topk_pad(k) as i64;
    g.hist = work;
    g.state = work + 1024;
    g.slot = work + 1056;
    g.keys = work + 1072;
    g.out_scores = out.scores;
    g.out_idx = out.idx;
    g.count = out.count;
    let kern = DetectKernels::of(b)?;
    call(b, unsafe { (kern.det_topk)(&g, st(stream)) }, "det_topk")
}

/// The k largest probabilities > thr of probs [n] with their indices, sorted descending, ties to the
/// lower index (`cpu::detect::postprocess::topk_above`). NaN is never a candidate.
#[allow(clippy::too_many_arguments)]
pub fn top_k(b: Backend, probs: u64, n: usize, k: usize, thr: f32, work: u64, work_bytes: u64, out: &TopkOut, stream: u64) -> NdResult<()> {
    crate::ensure!(!thr.is_nan(), "score threshold is NaN");
    sp(b, probs, n, 4, "probs")?;
    let g = TopkGeom { n: n as i64, k: k as i64, mode: 0, thr, scores: probs, ..Default::default() };
    topk_run(b, g, work, work_bytes, out, stream)
}

/// The hard-negative pool of `cpu::detect::sampler::sample`: the k background anchors (labels == 0) with
/// the largest max logit over logits [a, c] (NaN logits skipped), sorted descending, ties to the lower index.
#[allow(clippy::too_many_arguments)]
pub fn hnm_pool(b: Backend, logits: u64, labels: u64, a: usize, c: i32, k: usize, work: u64, work_bytes: u64, out: &TopkOut, stream: u64) -> NdResult<()> {
    crate::ensure!(c > 0, "number of classes must be positive, got {c}");
    let e = a.checked_mul(c as usize).ok_or_else(|| NdError::invalid("a*c overflows"))?;
    sp(b, logits, e, 4, "logits")?;
    sp(b, labels, a, 4, "labels")?;
    let g = TopkGeom { n: a as i64, k: k as i64, mode: 1, c, scores: logits, labels, ..Default::default() };
    topk_run(b, g, work, work_bytes, out, stream)
}

#[cfg(test)]
mod tests;
