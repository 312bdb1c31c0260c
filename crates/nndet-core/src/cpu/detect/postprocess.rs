//! Per-patch detection post-processing, mirroring nnDetection
//! `BaseRetinaNet.postprocess_detections_single_image` (nndet/core/retina.py, spec §5.9): clip boxes to the
//! patch; flatten probabilities [A, C] anchor-major; keep the `min(topk, A)` largest (sorted descending, ties
//! to the lower flat index; NOTE: [quirk] nnDetection cuts at `min(topk_candidates, number of anchors)`, so
//! a patch with fewer than `topk` anchors keeps only A of its A·C scores — the parity fixtures show it); keep p > score_thresh; anchor = idx / C, label = idx % C; drop boxes with a side
//! < min_size; class-wise NMS (nnDetection's label shift, IoU > nms_thresh suppresses); keep the first
//! `detections_per_img`.
//!
//! Boxes come either decoded [A, 6] or as deltas [A, 6] with anchors (then only the selected candidates are
//! decoded, which gives the same boxes as decoding everything first). NOTE: a NaN probability is never a
//! candidate (nnDetection's sort would let NaNs take top-k slots before the threshold drops them).
//! Selection is a threaded radix select (select.rs) over the flattened probabilities.
use super::anchors::decode_one;
use super::boxes::{big_enough, clip_one};
use super::nms::nms;
use super::select::top_k;

#[derive(Clone, Copy, Debug)]
pub struct PostParams {
    pub topk: usize,
    pub score_thresh: f32,
    pub detections_per_img: usize,
    pub min_size: f32,
    pub nms_thresh: f32,
}

/// Where the boxes come from.
pub enum BoxSource<'a> {
    Decoded(&'a [f32]),
    Deltas { deltas: &'a [f32], anchors: &'a [f32], weights: [f32; 6], clip: f32 },
}

/// Output detections: boxes [n, 6], scores [n], labels [n] (0-based classes).
#[derive(Default, Debug)]
pub struct Detections {
    pub boxes: Vec<f32>,
    pub scores: Vec<f32>,
    pub labels: Vec<i32>,
}

/// The top `k` (probability, flat index) pairs with p > thr, sorted descending (ties: lower index first).
pub fn topk_above(probs: &[f32], k: usize, thr: f32) -> Vec<(f32, u32)> {
    top_k(probs.len(), k, |i| if probs[i] > thr { Some(probs[i]) } else { None })
}

pub fn postprocess(src: &BoxSource, probs: &[f32], c: usize, shape: [f32; 3], p: &PostParams) -> Detections {
    let cand = topk_above(probs, p.topk.min(probs.len() / c), p.score_thresh);
    let mut boxes = Vec::with_capacity(cand.len() * 6);
    let mut scores = Vec::with_capacity(cand.len());
    let mut labels = Vec::with_capacity(cand.len());
    for &(prob, idx) in &cand {
        let (a, label) = (idx as usize / c, (idx as usize % c) as i32);
        let mut b = [0f32; 6];
        match src {
            BoxSource::Decoded(bx) => b.copy_from_slice(&bx[a * 6..a * 6 + 6]),
            BoxSource::Deltas { deltas, anchors, weights, clip } => {
                decode_one(&deltas[a * 6..a * 6 + 6], &anchors[a * 6..a * 6 + 6], *weights, *clip, &mut b)
            }
        }
        clip_one(&mut b, shape);
        if big_enough(&b, p.min_size) {
            boxes.extend_from_slice(&b);
            scores.push(prob);
            labels.push(label);
        }
    }
    let keep = nms(&boxes, &scores, Some(&labels), p.nms_thresh, false);
    let mut out = Detections::default();
    for &i in keep.iter().take(p.detections_per_img) {
        let i = i as usize;
        out.boxes.extend_from_slice(&boxes[i * 6..i * 6 + 6]);
        out.scores.push(scores[i]);
        out.labels.push(labels[i]);
    }
    out
}
