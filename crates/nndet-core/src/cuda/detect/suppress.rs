//! NMS, WBC and top-k selection on the device (cuda/detect_nms.cu, detect_select.cu): workspaces carved
//! from one caller buffer, results (kept indices, clusters, counts) left on the device.
use super::{call, chk, i32_count, sp, span, stream_ok, Backend, DetectKernels, NmsGeom, TopkGeom, NMS_MAX, SORT_TILE};
use crate::error::{NdError, NdResult};

/// Byte offsets of the NMS/WBC workspace carved from one buffer (16-byte aligned pieces).
pub(super) struct Carve(pub(super) u64);

impl Carve {
    pub(super) fn take(&mut self, base: u64, bytes: usize) -> u64 {
        let at = self.0.div_ceil(16) * 16;
        self.0 = at + bytes as u64;
        base + at
    }
}

pub(super) fn nms_dims(n: usize) -> (usize, usize) {
    (n.next_power_of_two().max(SORT_TILE), n.div_ceil(64))
}

/// Fill the workspace pointers of `g` from `work`; returns the bytes they need.
pub(super) fn nms_carve(g: &mut NmsGeom, n: usize, work: u64) -> u64 {
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
    call(b, unsafe { (k.det_nms)(&g, stream_ok(b, stream)?) }, "det_nms")
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
    call(b, unsafe { (k.det_wbc)(&g, stream_ok(b, stream)?) }, "det_wbc")
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

/// Fill the sort length, workspace and output pointers of `g` (k set).
pub(super) fn topk_fill(g: &mut TopkGeom, work: u64, out: &TopkOut) {
    g.k_pad = topk_pad(g.k as usize) as i64;
    g.hist = work;
    g.state = work + 1024;
    g.slot = work + 1056;
    g.keys = work + 1072;
    g.out_scores = out.scores;
    g.out_idx = out.idx;
    g.count = out.count;
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
    topk_fill(&mut g, work, out);
    let kern = DetectKernels::of(b)?;
    call(b, unsafe { (kern.det_topk)(&g, stream_ok(b, stream)?) }, "det_topk")
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

