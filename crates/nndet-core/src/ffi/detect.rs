//! C ABI shells of the detection family (ops/detect.rs): box ops, anchors and coder, ATSS, hard-negative
//! sampling, losses, NMS, WBC and per-patch post-processing. Box arrays are flat [n, 6] f32 with their
//! float count; indices are i32; counts of variable-size results go to an i32 out-pointer.
#![allow(clippy::too_many_arguments)]

use crate::abi::{out, slice, slice_mut};
use crate::cpu::detect::{loss::HeadLossInput, postprocess, sampler::SamplerParams};
use crate::error::guard;
use crate::ops::detect as op;

/// Pairwise `kind` (0 IoU, 1 GIoU with `eps` on the enclosing volume, 2 centre distance): out [n, m].
#[no_mangle]
pub unsafe extern "C" fn nd_box_pairwise(a: *const f32, na: u64, b: *const f32, nb: u64, kind: i32, eps: f32, o: *mut f32, no: u64) -> i32 {
    guard("nd_box_pairwise", || op::pairwise(slice(a, na, "boxes1")?, slice(b, nb, "boxes2")?, kind, eps, slice_mut(o, no, "out")?))
}

/// Elementwise `kind` of box i with box i: out [n].
#[no_mangle]
pub unsafe extern "C" fn nd_box_elementwise(a: *const f32, b: *const f32, n6: u64, kind: i32, eps: f32, o: *mut f32, no: u64) -> i32 {
    guard("nd_box_elementwise", || op::elementwise(slice(a, n6, "boxes1")?, slice(b, n6, "boxes2")?, kind, eps, slice_mut(o, no, "out")?))
}

/// Volumes [n] and centres [n, 3].
#[no_mangle]
pub unsafe extern "C" fn nd_box_areas_centers(b: *const f32, n6: u64, areas: *mut f32, na: u64, centers: *mut f32, nc: u64) -> i32 {
    guard("nd_box_areas_centers", || op::areas_centers(slice(b, n6, "boxes")?, slice_mut(areas, na, "areas")?, slice_mut(centers, nc, "centers")?))
}

/// Clip boxes in place to [0, s0] x [0, s1] x [0, s2].
#[no_mangle]
pub unsafe extern "C" fn nd_box_clip(b: *mut f32, n6: u64, s0: f32, s1: f32, s2: f32) -> i32 {
    guard("nd_box_clip", || op::clip(slice_mut(b, n6, "boxes")?, [s0, s1, s2]))
}

/// Indices of boxes with every side >= min_size into keep [n]; count into *count.
#[no_mangle]
pub unsafe extern "C" fn nd_box_remove_small(b: *const f32, n6: u64, min_size: f32, keep: *mut i32, nk: u64, count: *mut i32) -> i32 {
    guard("nd_box_remove_small", || {
        let c = out(count, "count")?;
        *c = op::remove_small(slice(b, n6, "boxes")?, min_size, slice_mut(keep, nk, "keep")?)? as i32;
        Ok(())
    })
}

/// Instance mask [s0, s1, s2] i32 -> ids [cap] and boxes [cap, 6]; *count = number of instances (when it
/// exceeds cap nothing is written: call again with a larger cap).
#[no_mangle]
pub unsafe extern "C" fn nd_instances_to_boxes(mask: *const i32, n: u64, s0: i64, s1: i64, s2: i64, ids: *mut i32, boxes: *mut f32, cap: u64, count: *mut i32) -> i32 {
    guard("nd_instances_to_boxes", || {
        let c = out(count, "count")?;
        let k = op::instances_to_boxes(slice(mask, n, "mask")?, [s0, s1, s2], slice_mut(ids, cap, "ids")?, slice_mut(boxes, cap * 6, "boxes")?)?;
        *c = k as i32;
        Ok(())
    })
}

/// Anchors of all levels: `desc` 9 i32 per level (n_w, n_h, n_d, fmap0..2, stride0..2), `sizes` the
/// widths, heights and depths of each level in turn; out [A, 6].
#[no_mangle]
pub unsafe extern "C" fn nd_anchors_generate(desc: *const i32, nd: u64, sizes: *const f32, ns: u64, o: *mut f32, no: u64) -> i32 {
    guard("nd_anchors_generate", || op::anchors_generate(slice(desc, nd, "desc")?, slice(sizes, ns, "sizes")?, slice_mut(o, no, "anchors")?))
}

/// Box coder encode: deltas [n, 6] of gt relative to anchors, coder weights [6].
#[no_mangle]
pub unsafe extern "C" fn nd_box_encode(gt: *const f32, anchors: *const f32, n6: u64, w: *const f32, o: *mut f32) -> i32 {
    guard("nd_box_encode", || op::encode(slice(gt, n6, "gt")?, slice(anchors, n6, "anchors")?, slice(w, 6, "weights")?, slice_mut(o, n6, "out")?))
}

/// Box coder decode with the size-delta clip.
#[no_mangle]
pub unsafe extern "C" fn nd_box_decode(deltas: *const f32, anchors: *const f32, n6: u64, w: *const f32, clip: f32, o: *mut f32) -> i32 {
    guard("nd_box_decode", || op::decode(slice(deltas, n6, "deltas")?, slice(anchors, n6, "anchors")?, slice(w, 6, "weights")?, clip, slice_mut(o, n6, "out")?))
}

/// ATSS matches [A] (GT index or -1) for gt [G, 6] and anchors [A, 6] with per-level counts.
#[no_mangle]
pub unsafe extern "C" fn nd_atss_match(
    gt: *const f32, ng6: u64, anchors: *const f32, na6: u64, per_level: *const i32, nl: u64,
    per_loc: i32, num_candidates: i32, center_in_gt: i32, plain: i32, matches: *mut i32, nm: u64,
) -> i32 {
    guard("nd_atss_match", || {
        op::atss_match(
            slice(gt, ng6, "gt")?, slice(anchors, na6, "anchors")?, slice(per_level, nl, "per_level")?,
            per_loc, num_candidates, center_in_gt != 0, plain != 0, slice_mut(matches, nm, "matches")?,
        )
    })
}

/// ATSS matches [A] on the anchors of levels (`desc`/`sizes` as nd_anchors_generate), computed on demand.
#[no_mangle]
pub unsafe extern "C" fn nd_atss_match_levels(
    gt: *const f32, ng6: u64, desc: *const i32, nd: u64, sizes: *const f32, ns: u64, num_candidates: i32, center_in_gt: i32,
    matches: *mut i32, nm: u64,
) -> i32 {
    guard("nd_atss_match_levels", || {
        op::atss_match_levels(
            slice(gt, ng6, "gt")?, slice(desc, nd, "desc")?, slice(sizes, ns, "sizes")?, num_candidates, center_in_gt != 0,
            slice_mut(matches, nm, "matches")?,
        )
    })
}

/// Hard-negative sampling over the batch; counts[0] = #pos, counts[1] = #neg (ascending indices).
#[no_mangle]
pub unsafe extern "C" fn nd_hnm_sample(
    labels: *const i32, na: u64, logits: *const f32, nl: u64, c: i32, batch_size_per_image: i32, batch: i32,
    positive_fraction: f64, min_neg: i32, pool_size: f64, seed: u64, pos: *mut i32, npos: u64, neg: *mut i32,
    nneg: u64, counts: *mut i32,
) -> i32 {
    guard("nd_hnm_sample", || {
        crate::ensure!(batch_size_per_image >= 0 && batch >= 0 && min_neg >= 0, "sampler sizes must be non-negative");
        let p = SamplerParams {
            batch_size_per_image: batch_size_per_image as usize, batch: batch as usize, positive_fraction,
            min_neg: min_neg as usize, pool_size, seed,
        };
        let cnt = slice_mut(counts, 2, "counts")?;
        let (a, b) = op::hnm_sample(slice(labels, na, "labels")?, slice(logits, nl, "logits")?, c, &p, slice_mut(pos, npos, "pos")?, slice_mut(neg, nneg, "neg")?)?;
        cnt[0] = a as i32;
        cnt[1] = b as i32;
        Ok(())
    })
}

/// BCE-with-logits one-hot loss (mean) into *loss, gradient [n, c].
#[no_mangle]
pub unsafe extern "C" fn nd_bce_loss(logits: *const f32, nl: u64, targets: *const i32, nt: u64, c: i32, grad: *mut f32, loss: *mut f64) -> i32 {
    guard("nd_bce_loss", || {
        let l = out(loss, "loss")?;
        *l = op::bce_loss(slice(logits, nl, "logits")?, slice(targets, nt, "targets")?, c, slice_mut(grad, nl, "grad")?)?;
        Ok(())
    })
}

/// GIoU loss (sum of -GIoU) into *loss, per-box GIoU [n], gradient wrt pred [n, 6].
#[no_mangle]
pub unsafe extern "C" fn nd_giou_loss(pred: *const f32, target: *const f32, n6: u64, eps: f64, giou: *mut f32, ng: u64, grad: *mut f32, loss: *mut f64) -> i32 {
    guard("nd_giou_loss", || {
        let l = out(loss, "loss")?;
        *l = op::giou_loss(slice(pred, n6, "pred")?, slice(target, n6, "target")?, eps, slice_mut(giou, ng, "giou")?, slice_mut(grad, n6, "grad")?)?;
        Ok(())
    })
}

/// Detection head loss for sampled indices; losses[0] = cls, losses[1] = reg (NaN without positives).
#[no_mangle]
pub unsafe extern "C" fn nd_head_loss(
    logits: *const f32, deltas: *const f32, anchors: *const f32, matched_gt: *const f32, labels: *const i32, na: u64, c: i32,
    pos: *const i32, npos: u64, neg: *const i32, nneg: u64, weights: *const f32, clip: f32,
    grad_logits: *mut f32, grad_deltas: *mut f32, losses: *mut f64,
) -> i32 {
    guard("nd_head_loss", || {
        crate::ensure!(c > 0, "number of classes must be positive, got {c}");
        let cu = c as usize;
        let w = slice(weights, 6, "weights")?;
        let x = HeadLossInput {
            logits: slice(logits, na * c as u64, "logits")?, deltas: slice(deltas, na * 6, "deltas")?,
            anchors: slice(anchors, na * 6, "anchors")?, labels: slice(labels, na, "labels")?,
            matched_gt: slice(matched_gt, na * 6, "matched_gt")?, pos: slice(pos, npos, "pos")?, neg: slice(neg, nneg, "neg")?,
            c: cu, weights: [w[0] as f64, w[1] as f64, w[2] as f64, w[3] as f64, w[4] as f64, w[5] as f64], clip: clip as f64,
        };
        let ls = slice_mut(losses, 2, "losses")?;
        let (a, b) = op::head_loss(&x, slice_mut(grad_logits, na * c as u64, "grad_logits")?, slice_mut(grad_deltas, na * 6, "grad_deltas")?)?;
        ls[0] = a;
        ls[1] = b;
        Ok(())
    })
}

/// Segmentation loss: logits [B, 2, V], target [B, V]; losses[0] = seg_ce, losses[1] = seg_dice; gradient
/// of w_ce * seg_ce + w_dice * seg_dice.
#[no_mangle]
pub unsafe extern "C" fn nd_seg_loss(logits: *const f32, nl: u64, target: *const i32, nt: u64, b: i32, batch_dice: i32, w_ce: f64, w_dice: f64, grad: *mut f32, losses: *mut f64) -> i32 {
    guard("nd_seg_loss", || {
        let ls = slice_mut(losses, 2, "losses")?;
        let (a, d) = op::seg_loss(slice(logits, nl, "logits")?, slice(target, nt, "target")?, b, batch_dice != 0, w_ce, w_dice, slice_mut(grad, nl, "grad")?)?;
        ls[0] = a;
        ls[1] = d;
        Ok(())
    })
}

/// Greedy NMS; class-wise when labels are given (nl = n), else nl = 0. keep [n], *count kept.
#[no_mangle]
pub unsafe extern "C" fn nd_nms(boxes: *const f32, n6: u64, scores: *const f32, n: u64, labels: *const i32, nl: u64, thr: f32, plain: i32, keep: *mut i32, count: *mut i32) -> i32 {
    guard("nd_nms", || {
        let c = out(count, "count")?;
        *c = op::nms(slice(boxes, n6, "boxes")?, slice(scores, n, "scores")?, slice(labels, nl, "labels")?, thr, plain != 0, slice_mut(keep, n, "keep")?)? as i32;
        Ok(())
    })
}

/// Class-wise NMS ranked by score * weight (the ensembler's model NMS). keep [n], *count kept.
#[no_mangle]
pub unsafe extern "C" fn nd_weighted_nms(boxes: *const f32, n6: u64, scores: *const f32, weights: *const f32, labels: *const i32, n: u64, thr: f32, plain: i32, keep: *mut i32, count: *mut i32) -> i32 {
    guard("nd_weighted_nms", || {
        let c = out(count, "count")?;
        *c = op::weighted_nms(slice(boxes, n6, "boxes")?, slice(scores, n, "scores")?, slice(weights, n, "weights")?, slice(labels, n, "labels")?, thr, plain != 0, slice_mut(keep, n, "keep")?)? as i32;
        Ok(())
    })
}

/// Weighted box clustering; outputs sized for n clusters, *count written.
#[no_mangle]
pub unsafe extern "C" fn nd_wbc(
    boxes: *const f32, n6: u64, scores: *const f32, labels: *const i32, weights: *const f32, n_exp: *const f32, n: u64,
    thr: f32, score_thr: f32, out_boxes: *mut f32, out_scores: *mut f32, out_labels: *mut i32, count: *mut i32,
) -> i32 {
    guard("nd_wbc", || {
        let c = out(count, "count")?;
        let o = op::WbcOut { boxes: slice_mut(out_boxes, n * 6, "out_boxes")?, scores: slice_mut(out_scores, n, "out_scores")?, labels: slice_mut(out_labels, n, "out_labels")? };
        *c = op::wbc(slice(boxes, n6, "boxes")?, slice(scores, n, "scores")?, slice(labels, n, "labels")?, slice(weights, n, "weights")?, slice(n_exp, n, "n_exp")?, thr, score_thr, o)? as i32;
        Ok(())
    })
}

/// Per-patch post-processing. `boxes` holds decoded boxes [A, 6] when `na6` is 0, else deltas decoded with
/// `anchors` [A, 6], coder `weights` [6] and `clip`. Outputs sized `cap`; *count written.
#[no_mangle]
pub unsafe extern "C" fn nd_det_postprocess(
    boxes: *const f32, nb6: u64, anchors: *const f32, na6: u64, weights: *const f32, clip: f32, probs: *const f32, np: u64, c: i32,
    s0: f32, s1: f32, s2: f32, topk: i32, score_thresh: f32, detections_per_img: i32, min_size: f32, nms_thresh: f32,
    out_boxes: *mut f32, out_scores: *mut f32, out_labels: *mut i32, cap: u64, count: *mut i32,
) -> i32 {
    guard("nd_det_postprocess", || {
        crate::ensure!(topk >= 0 && detections_per_img >= 0, "topk and detections_per_img must be non-negative");
        let cnt = out(count, "count")?;
        let b = slice(boxes, nb6, "boxes")?;
        let src = if na6 == 0 {
            postprocess::BoxSource::Decoded(b)
        } else {
            let w = slice(weights, 6, "weights")?;
            postprocess::BoxSource::Deltas { deltas: b, anchors: slice(anchors, na6, "anchors")?, weights: w.try_into().unwrap(), clip }
        };
        let p = postprocess::PostParams { topk: topk as usize, score_thresh, detections_per_img: detections_per_img as usize, min_size, nms_thresh };
        let o = op::WbcOut { boxes: slice_mut(out_boxes, cap * 6, "out_boxes")?, scores: slice_mut(out_scores, cap, "out_scores")?, labels: slice_mut(out_labels, cap, "out_labels")? };
        *cnt = op::postprocess(&src, slice(probs, np, "probs")?, c, [s0, s1, s2], &p, o)? as i32;
        Ok(())
    })
}
