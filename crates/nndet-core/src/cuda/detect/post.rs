//! Per-patch post-processing on the device (cuda/detect_post.cu), as `cpu::detect::postprocess`: top-k of
//! the probabilities, boxes (given or decoded), clipping, small boxes dropped, class-wise NMS, the first
//! detections_per_img kept. Everything stays on the device, the detection count included.
use super::suppress::{nms_carve, nms_dims, topk_fill, topk_workspace_bytes, Carve, TopkOut, WbcOut};
use super::{call, chk, i32_count, sp, span, stream_ok, Backend, DetectKernels, PostGeom, TopkGeom, NMS_MAX};
use crate::cpu::detect::postprocess::PostParams;
use crate::error::{NdError, NdResult};

/// Where the boxes of `postprocess` come from (device buffers).
pub enum DevBoxSource {
    /// Decoded boxes [A, 6].
    Decoded(u64),
    /// Deltas [A, 6] against anchors [A, 6], decoded with the coder's weights and clamp.
    Deltas { deltas: u64, anchors: u64, weights: [f32; 6], clip: f32 },
}

/// Fill the workspace pointers of `g` (k set) from `work`; returns the bytes they need.
fn post_carve(g: &mut PostGeom, k: usize, work: u64) -> u64 {
    let mut c = Carve(0);
    let tw = c.take(work, topk_workspace_bytes(k.max(1)) as usize);
    let out = TopkOut { scores: c.take(work, k * 4), idx: c.take(work, k * 4), count: c.take(work, 4) };
    topk_fill(&mut g.topk, tw, &out);
    g.pbox = c.take(work, k * 24);
    g.pscore = c.take(work, k * 4);
    g.plabel = c.take(work, k * 4);
    g.nms.keep = c.take(work, k * 4);
    g.nms.count = c.take(work, 4);
    let nw = c.take(work, 0);
    c.0 + nms_carve(&mut g.nms, k, nw)
}

/// Workspace bytes of `postprocess` for `a` anchors and `topk` candidates.
pub fn postprocess_workspace_bytes(a: usize, topk: usize) -> u64 {
    let mut g = PostGeom::default();
    g.topk.k = topk.min(a) as i64;
    post_carve(&mut g, topk.min(a), 0)
}

/// postprocess_detections_single_image over probs [A, C]: writes up to `cap` detections (boxes [cap, 6],
/// scores, 0-based labels) and their number (out.count) on the device.
#[allow(clippy::too_many_arguments)]
pub fn postprocess(
    b: Backend,
    probs: u64,
    a: usize,
    c: i32,
    src: &DevBoxSource,
    shape: [f32; 3],
    p: &PostParams,
    work: u64,
    work_bytes: u64,
    out: &WbcOut,
    cap: usize,
    stream: u64,
) -> NdResult<()> {
    crate::ensure!(c > 0, "number of classes must be positive, got {c}");
    let ac = a.checked_mul(c as usize).ok_or_else(|| NdError::invalid("a*c overflows"))?;
    i32_count("anchors * classes", ac)?;
    chk::check_thr("NMS threshold", p.nms_thresh)?;
    crate::ensure!(!p.score_thresh.is_nan() && !p.min_size.is_nan(), "score threshold and min size must not be NaN");
    crate::ensure!(shape.iter().all(|s| s.is_finite() && *s >= 0.0), "image shape must be finite and >= 0, got {shape:?}");
    crate::ensure!(cap >= p.detections_per_img.min(ac), "output capacity {cap} < detections_per_img {}", p.detections_per_img);
    let k = p.topk.min(a);
    crate::ensure!(k <= NMS_MAX, "the device post-processing takes at most {NMS_MAX} candidates, got {k}");
    sp(b, probs, ac, 4, "probs")?;
    let mut g = PostGeom { a: a as i64, c, k: k as i64, dpi: p.detections_per_img.min(cap) as i64, shape, min_size: p.min_size, ..Default::default() };
    match *src {
        DevBoxSource::Decoded(bx) => {
            sp(b, bx, a, 24, "boxes")?;
            g.decoded = 1;
            g.boxes = bx;
        }
        DevBoxSource::Deltas { deltas, anchors, weights, clip } => {
            g.w = chk::weights_of(&weights)?;
            crate::ensure!(!clip.is_nan(), "decode clip is NaN");
            sp(b, deltas, a, 24, "deltas")?;
            sp(b, anchors, a, 24, "anchors")?;
            g.boxes = deltas;
            g.anchors = anchors;
            g.clip = clip;
        }
    }
    sp(b, out.boxes, cap, 24, "out boxes")?;
    sp(b, out.scores, cap, 4, "out scores")?;
    sp(b, out.labels, cap, 4, "out labels")?;
    span(b, out.count, 4, "count")?;
    g.out_boxes = out.boxes;
    g.out_scores = out.scores;
    g.out_labels = out.labels;
    g.count = out.count;
    g.topk = TopkGeom { n: ac as i64, k: k as i64, mode: 0, thr: p.score_thresh, scores: probs, ..Default::default() };
    let need = post_carve(&mut g, k, work);
    crate::ensure!(work_bytes >= need, "post-processing workspace has {work_bytes} bytes, needs {need}");
    span(b, work, need, "workspace")?;
    let (n_pad, cbn) = nms_dims(k);
    g.nms.n = k as i64;
    g.nms.n_pad = n_pad as i64;
    g.nms.cbn = cbn as i32;
    g.nms.thr = p.nms_thresh;
    g.nms.boxes = g.pbox;
    g.nms.scores = g.pscore;
    g.nms.labels = g.plabel;
    let kern = DetectKernels::of(b)?;
    call(b, unsafe { (kern.det_postprocess)(&g, stream_ok(b, stream)?) }, "det_postprocess")
}
