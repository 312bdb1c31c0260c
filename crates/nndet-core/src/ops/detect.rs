//! Detection ops: argument checks shared by every backend, then dispatch to cpu/detect (CUDA later).
//!
//! Defined results for hostile input (tested from TS): box arrays must be a multiple of 6 floats; NMS, WBC,
//! ATSS and post-processing reject NaN/inf coordinates, inverted boxes (x2 < x1, y2 < y1, z2 < z1) and NaN
//! scores or thresholds with InvalidArgument naming the first bad element; zero boxes give empty results;
//! pairwise/elementwise box ops propagate NaN like torch; post-processing never selects NaN probabilities.
use crate::cpu::detect::{anchors, atss, boxes, instances, loss, nms, postprocess, sampler, seg_loss, wbc};
use crate::error::{NdError, NdResult, Status};
use crate::ensure;

fn size_err(what: &str, expected: usize, got: usize) -> NdError {
    NdError::new(Status::BufferSize, format!("{what} has {got} elements, expected {expected}"))
}

pub(crate) fn need(what: &str, buf_len: usize, expected: usize) -> NdResult<()> {
    if buf_len != expected {
        return Err(size_err(what, expected, buf_len));
    }
    Ok(())
}

/// Number of boxes in a flat [n, 6] array.
pub fn box_count(what: &str, b: &[f32]) -> NdResult<usize> {
    if b.len() % 6 != 0 {
        return Err(NdError::new(Status::BufferSize, format!("{what} has {} floats, not a multiple of 6", b.len())));
    }
    Ok(b.len() / 6)
}

/// Finite coordinates and x1 <= x2, y1 <= y2, z1 <= z2.
pub fn check_boxes(what: &str, b: &[f32]) -> NdResult<usize> {
    let n = box_count(what, b)?;
    for (i, r) in b.chunks_exact(6).enumerate() {
        ensure!(r.iter().all(|v| v.is_finite()), "{what}: box {i} has a non-finite coordinate {r:?}");
        ensure!(r[2] >= r[0] && r[3] >= r[1] && r[5] >= r[4], "{what}: box {i} is inverted (x2 < x1, y2 < y1 or z2 < z1): {r:?}");
    }
    Ok(n)
}

fn check_scores(what: &str, s: &[f32]) -> NdResult<()> {
    if let Some(i) = s.iter().position(|v| v.is_nan()) {
        return Err(NdError::invalid(format!("{what}[{i}] is NaN")));
    }
    Ok(())
}

pub(crate) fn check_thr(what: &str, t: f32) -> NdResult<()> {
    ensure!(t.is_finite(), "{what} must be finite, got {t}");
    Ok(())
}

pub fn pairwise(a: &[f32], b: &[f32], kind: i32, eps: f32, out: &mut [f32]) -> NdResult<()> {
    let (n, m) = (box_count("boxes1", a)?, box_count("boxes2", b)?);
    let kind = kind_of(kind)?;
    need("out", out.len(), n.checked_mul(m).ok_or_else(|| NdError::invalid("n*m overflows"))?)?;
    boxes::pairwise(a, b, kind, eps, out);
    Ok(())
}

pub(crate) fn kind_of(kind: i32) -> NdResult<boxes::Pairwise> {
    Ok(match kind {
        0 => boxes::Pairwise::Iou,
        1 => boxes::Pairwise::Giou,
        2 => boxes::Pairwise::CenterDist,
        _ => return Err(NdError::invalid(format!("unknown pairwise kind {kind} (0 iou, 1 giou, 2 centre distance)"))),
    })
}

pub fn elementwise(a: &[f32], b: &[f32], kind: i32, eps: f32, out: &mut [f32]) -> NdResult<()> {
    let n = box_count("boxes1", a)?;
    need("boxes2", b.len(), a.len())?;
    need("out", out.len(), n)?;
    boxes::elementwise(a, b, kind_of(kind)?, eps, out);
    Ok(())
}

pub fn areas_centers(b: &[f32], areas: &mut [f32], centers: &mut [f32]) -> NdResult<()> {
    let n = box_count("boxes", b)?;
    need("areas", areas.len(), n)?;
    need("centers", centers.len(), 3 * n)?;
    boxes::areas_centers(b, areas, centers);
    Ok(())
}

pub fn clip(b: &mut [f32], shape: [f32; 3]) -> NdResult<()> {
    box_count("boxes", b)?;
    ensure!(shape.iter().all(|s| s.is_finite() && *s >= 0.0), "clip shape must be finite and >= 0, got {shape:?}");
    boxes::clip(b, shape);
    Ok(())
}

pub fn remove_small(b: &[f32], min_size: f32, keep: &mut [i32]) -> NdResult<usize> {
    let n = box_count("boxes", b)?;
    need("keep", keep.len(), n)?;
    Ok(boxes::remove_small(b, min_size, keep))
}

/// Fills ids/boxes when they fit `cap` (= ids.len()); always returns the number of instances.
pub fn instances_to_boxes(mask: &[i32], shape: [i64; 3], ids: &mut [i32], out: &mut [f32]) -> NdResult<usize> {
    ensure!(shape.iter().all(|&s| s >= 0), "mask shape must be non-negative, got {shape:?}");
    let sh = [shape[0] as usize, shape[1] as usize, shape[2] as usize];
    need("mask", mask.len(), sh[0] * sh[1] * sh[2])?;
    need("boxes", out.len(), ids.len() * 6)?;
    let (found, b) = instances::instances_to_boxes(mask, sh);
    if found.len() <= ids.len() {
        ids[..found.len()].copy_from_slice(&found);
        out[..b.len()].copy_from_slice(&b);
    }
    Ok(found.len())
}

/// Levels from 9 i32 per level (n_width, n_height, n_depth, fmap0..2, stride0..2) and their sizes.
pub fn levels_of(desc: &[i32], sizes: &[f32]) -> NdResult<Vec<anchors::Level>> {
    ensure!(desc.len() % 9 == 0 && !desc.is_empty(), "anchor level description needs 9 ints per level, got {}", desc.len());
    let mut out = Vec::new();
    let mut off = 0usize;
    for (l, d) in desc.chunks_exact(9).enumerate() {
        ensure!(d.iter().all(|&v| v >= 0) && d[..3].iter().all(|&v| v > 0), "level {l}: bad description {d:?}");
        ensure!(d[6..].iter().all(|&v| v > 0), "level {l}: strides must be positive, got {:?}", &d[6..]);
        let take = |k: usize, off: &mut usize| -> NdResult<Vec<f32>> {
            let n = d[k] as usize;
            ensure!(*off + n <= sizes.len(), "level {l}: anchor sizes run past the {} given", sizes.len());
            let v = sizes[*off..*off + n].to_vec();
            ensure!(v.iter().all(|x| x.is_finite() && *x > 0.0), "level {l}: anchor sizes must be positive, got {v:?}");
            *off += n;
            Ok(v)
        };
        let widths = take(0, &mut off)?;
        let heights = take(1, &mut off)?;
        let depths = take(2, &mut off)?;
        out.push(anchors::Level {
            widths,
            heights,
            depths,
            fmap: [d[3] as usize, d[4] as usize, d[5] as usize],
            stride: [d[6] as usize, d[7] as usize, d[8] as usize],
        });
    }
    need("anchor sizes", sizes.len(), off)?;
    Ok(out)
}

pub fn anchors_generate(desc: &[i32], sizes: &[f32], out: &mut [f32]) -> NdResult<()> {
    let levels = levels_of(desc, sizes)?;
    let total: usize = levels.iter().map(|l| l.count()).sum();
    need("anchors", out.len(), total * 6)?;
    anchors::generate(&levels, out);
    Ok(())
}

pub(crate) fn weights_of(w: &[f32]) -> NdResult<[f32; 6]> {
    need("coder weights", w.len(), 6)?;
    ensure!(w.iter().all(|v| v.is_finite() && *v != 0.0), "coder weights must be finite and non-zero, got {w:?}");
    Ok(w.try_into().unwrap())
}

pub fn encode(gt: &[f32], anc: &[f32], w: &[f32], out: &mut [f32]) -> NdResult<()> {
    box_count("gt", gt)?;
    need("anchors", anc.len(), gt.len())?;
    need("out", out.len(), gt.len())?;
    anchors::encode(gt, anc, weights_of(w)?, out);
    Ok(())
}

pub fn decode(deltas: &[f32], anc: &[f32], w: &[f32], clip: f32, out: &mut [f32]) -> NdResult<()> {
    box_count("deltas", deltas)?;
    need("anchors", anc.len(), deltas.len())?;
    need("out", out.len(), deltas.len())?;
    ensure!(!clip.is_nan(), "decode clip is NaN");
    anchors::decode(deltas, anc, weights_of(w)?, clip, out);
    Ok(())
}

pub fn atss_match(gt: &[f32], anc: &[f32], per_level: &[i32], per_loc: i32, num_candidates: i32, center_in_gt: bool, plain: bool, matches: &mut [i32]) -> NdResult<()> {
    check_boxes("gt boxes", gt)?;
    let na = box_count("anchors", anc)?;
    need("matches", matches.len(), na)?;
    ensure!(per_loc > 0 && num_candidates > 0, "anchors per location ({per_loc}) and candidates ({num_candidates}) must be positive");
    ensure!(per_level.iter().all(|&c| c >= 0), "anchors per level must be non-negative, got {per_level:?}");
    let pl: Vec<usize> = per_level.iter().map(|&c| c as usize).collect();
    ensure!(pl.iter().sum::<usize>() == na, "anchors per level {per_level:?} sum to {}, but there are {na} anchors", pl.iter().sum::<usize>());
    atss::atss_match(gt, &atss::Flat(anc), &pl, per_loc as usize, num_candidates as usize, center_in_gt, !plain, matches)
        .map_err(|i| NdError::invalid(format!("anchor {i} has a non-finite coordinate")))
}

/// ATSS on the anchors of `levels` (9 ints per level + sizes, as `anchors_generate`), computed on demand.
pub fn atss_match_levels(gt: &[f32], desc: &[i32], sizes: &[f32], num_candidates: i32, center_in_gt: bool, matches: &mut [i32]) -> NdResult<()> {
    check_boxes("gt boxes", gt)?;
    let levels = levels_of(desc, sizes)?;
    let per_loc = levels[0].per_location();
    ensure!(levels.iter().all(|l| l.per_location() == per_loc), "all levels must have the same number of anchors per location");
    ensure!(num_candidates > 0, "candidates ({num_candidates}) must be positive");
    let grid = anchors::Grid::new(&levels);
    need("matches", matches.len(), grid.len())?;
    let pl = grid.per_level();
    atss::atss_match(gt, &grid, &pl, per_loc, num_candidates as usize, center_in_gt, true, matches)
        .map_err(|i| NdError::invalid(format!("anchor {i} has a non-finite coordinate")))
}

pub fn hnm_sample(labels: &[i32], logits: &[f32], c: i32, p: &sampler::SamplerParams, pos: &mut [i32], neg: &mut [i32]) -> NdResult<(usize, usize)> {
    ensure!(c > 0, "number of classes must be positive, got {c}");
    need("logits", logits.len(), labels.len() * c as usize)?;
    ensure!(p.positive_fraction > 0.0 && p.positive_fraction <= 1.0, "positive_fraction must be in (0, 1], got {}", p.positive_fraction);
    ensure!(p.pool_size.is_finite() && p.pool_size >= 1.0, "pool_size must be >= 1, got {}", p.pool_size);
    let (ps, ns) = sampler::sample(labels, logits, c as usize, p);
    ensure!(ps.len() <= pos.len() && ns.len() <= neg.len(), "sampled {} positives and {} negatives, output capacity {} / {}", ps.len(), ns.len(), pos.len(), neg.len());
    for (o, &v) in pos.iter_mut().zip(&ps) {
        *o = v as i32;
    }
    for (o, &v) in neg.iter_mut().zip(&ns) {
        *o = v as i32;
    }
    Ok((ps.len(), ns.len()))
}

pub fn bce_loss(logits: &[f32], targets: &[i32], c: i32, grad: &mut [f32]) -> NdResult<f64> {
    ensure!(c > 0, "number of classes must be positive, got {c}");
    need("logits", logits.len(), targets.len() * c as usize)?;
    need("grad", grad.len(), logits.len())?;
    ensure!(targets.iter().all(|&t| t >= 0 && t <= c), "targets must be in 0..={c}");
    ensure!(!targets.is_empty(), "BCE of zero rows is undefined (mean over 0 entries)");
    Ok(loss::bce_onehot(logits, targets, c as usize, grad))
}

pub fn giou_loss(pred: &[f32], target: &[f32], eps: f64, giou: &mut [f32], grad: &mut [f32]) -> NdResult<f64> {
    let n = box_count("pred", pred)?;
    need("target", target.len(), pred.len())?;
    need("giou", giou.len(), n)?;
    need("grad", grad.len(), pred.len())?;
    Ok(loss::giou_loss(pred, target, eps, giou, grad))
}

fn check_indices(what: &str, idx: &[i32], n: usize) -> NdResult<()> {
    if let Some(i) = idx.iter().position(|&v| v < 0 || v as usize >= n) {
        return Err(NdError::invalid(format!("{what}[{i}] = {} is out of range 0..{n}", idx[i])));
    }
    Ok(())
}

pub fn head_loss(x: &loss::HeadLossInput, grad_logits: &mut [f32], grad_deltas: &mut [f32]) -> NdResult<(f64, f64)> {
    let a = x.labels.len();
    ensure!(x.c > 0, "number of classes must be positive");
    need("logits", x.logits.len(), a * x.c)?;
    for (w, v) in [("deltas", x.deltas), ("anchors", x.anchors), ("matched_gt", x.matched_gt)] {
        need(w, v.len(), a * 6)?;
    }
    need("grad_logits", grad_logits.len(), a * x.c)?;
    need("grad_deltas", grad_deltas.len(), a * 6)?;
    check_indices("pos", x.pos, a)?;
    check_indices("neg", x.neg, a)?;
    ensure!(x.labels.iter().all(|&t| t >= -1 && t <= x.c as i32), "target labels must be in -1..={}", x.c);
    Ok(loss::head_loss(x, grad_logits, grad_deltas))
}

pub fn seg_loss(logits: &[f32], target: &[i32], b: i32, batch_dice: bool, w_ce: f64, w_dice: f64, grad: &mut [f32]) -> NdResult<(f64, f64)> {
    ensure!(b > 0 && target.len() % b as usize == 0 && !target.is_empty(), "target of {} voxels does not split into {b} samples", target.len());
    need("logits", logits.len(), 2 * target.len())?;
    need("grad", grad.len(), logits.len())?;
    Ok(seg_loss::seg_loss(logits, target, b as usize, batch_dice, w_ce, w_dice, grad))
}

fn nms_inputs(boxes: &[f32], scores: &[f32], labels: &[i32], thr: f32) -> NdResult<usize> {
    let n = check_boxes("boxes", boxes)?;
    need("scores", scores.len(), n)?;
    check_scores("scores", scores)?;
    ensure!(labels.is_empty() || labels.len() == n, "labels has {} elements, expected 0 or {n}", labels.len());
    check_thr("IoU threshold", thr)?;
    Ok(n)
}

pub fn nms(boxes: &[f32], scores: &[f32], labels: &[i32], thr: f32, plain: bool, keep: &mut [i32]) -> NdResult<usize> {
    let n = nms_inputs(boxes, scores, labels, thr)?;
    need("keep", keep.len(), n)?;
    let k = nms::nms(boxes, scores, if labels.is_empty() { None } else { Some(labels) }, thr, plain);
    keep[..k.len()].copy_from_slice(&k);
    Ok(k.len())
}

pub fn weighted_nms(boxes: &[f32], scores: &[f32], weights: &[f32], labels: &[i32], thr: f32, plain: bool, keep: &mut [i32]) -> NdResult<usize> {
    let n = nms_inputs(boxes, scores, labels, thr)?;
    need("weights", weights.len(), n)?;
    need("labels", labels.len(), n)?;
    check_scores("weights", weights)?;
    need("keep", keep.len(), n)?;
    let k = nms::weighted_nms(boxes, scores, weights, labels, thr, plain);
    keep[..k.len()].copy_from_slice(&k);
    Ok(k.len())
}

pub struct WbcOut<'a> {
    pub boxes: &'a mut [f32],
    pub scores: &'a mut [f32],
    pub labels: &'a mut [i32],
}

pub fn wbc(boxes: &[f32], scores: &[f32], labels: &[i32], weights: &[f32], n_exp: &[f32], thr: f32, score_thr: f32, out: WbcOut) -> NdResult<usize> {
    let n = nms_inputs(boxes, scores, labels, thr)?;
    for (w, v) in [("labels", labels.len()), ("weights", weights.len()), ("n_exp", n_exp.len()), ("out scores", out.scores.len()), ("out labels", out.labels.len())] {
        need(w, v, n)?;
    }
    need("out boxes", out.boxes.len(), 6 * n)?;
    check_scores("weights", weights)?;
    check_scores("n_exp", n_exp)?;
    check_thr("score threshold", score_thr)?;
    // NOTE: a box's IoU with itself is 1, so at thr >= 1 the top box never joins its own cluster and the
    // clustering loop would not end.
    crate::ensure!(thr < 1.0, "WBC IoU threshold must be below 1, got {thr}");
    let r = wbc::wbc(boxes, scores, labels, weights, n_exp, thr, score_thr);
    for (i, c) in r.iter().enumerate() {
        out.boxes[i * 6..i * 6 + 6].copy_from_slice(&c.b);
        out.scores[i] = c.score;
        out.labels[i] = c.label;
    }
    Ok(r.len())
}

pub fn postprocess(src: &postprocess::BoxSource, probs: &[f32], c: i32, shape: [f32; 3], p: &postprocess::PostParams, out: WbcOut) -> NdResult<usize> {
    ensure!(c > 0, "number of classes must be positive, got {c}");
    ensure!(probs.len() % c as usize == 0, "probs has {} elements, not a multiple of {c} classes", probs.len());
    let a = probs.len() / c as usize;
    match src {
        postprocess::BoxSource::Decoded(b) => {
            need("boxes", b.len(), 6 * a)?;
            ensure!(b.iter().all(|v| v.is_finite()), "boxes must be finite");
        }
        postprocess::BoxSource::Deltas { deltas, anchors, .. } => {
            need("deltas", deltas.len(), 6 * a)?;
            need("anchors", anchors.len(), 6 * a)?;
            ensure!(deltas.iter().chain(anchors.iter()).all(|v| v.is_finite()), "deltas and anchors must be finite");
        }
    }
    ensure!(a <= u32::MAX as usize / c as usize, "too many anchors");
    check_thr("NMS threshold", p.nms_thresh)?;
    ensure!(!p.score_thresh.is_nan() && !p.min_size.is_nan(), "score threshold and min size must not be NaN");
    ensure!(shape.iter().all(|s| s.is_finite() && *s >= 0.0), "image shape must be finite and >= 0, got {shape:?}");
    let cap = out.scores.len();
    need("out boxes", out.boxes.len(), 6 * cap)?;
    need("out labels", out.labels.len(), cap)?;
    ensure!(cap >= p.detections_per_img.min(a * c as usize), "output capacity {cap} < detections_per_img {}", p.detections_per_img);
    let d = postprocess::postprocess(src, probs, c as usize, shape, p);
    let n = d.scores.len();
    out.boxes[..6 * n].copy_from_slice(&d.boxes);
    out.scores[..n].copy_from_slice(&d.scores);
    out.labels[..n].copy_from_slice(&d.labels);
    Ok(n)
}
