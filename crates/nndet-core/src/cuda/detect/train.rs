//! Training-side detection ops on the device (cuda/detect_atss.cu, detect_loss.cu): ATSS matching and the
//! classification / regression / segmentation losses with their gradients.
use super::{call, i32_count, sp, span, stream_ok, AtssGeom, Backend, BceGeom, DetectKernels, GiouGeom, HeadGeom, SegGeom};
use super::{ATSS_KMAX, LOSS_MAX_BLOCKS, MAX_LEVELS, SEG_MAX_BLOCKS};
use crate::error::{NdError, NdResult};

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
    Ok((g * kt * 8 + a * 4 + 4 * MAX_LEVELS) as u64)
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
    let need = (ng * kt * 8 + na * 4 + 4 * MAX_LEVELS) as u64;
    crate::ensure!(work_bytes >= need, "ATSS workspace has {work_bytes} bytes, needs {need}");
    span(b, work, need, "workspace")?;
    let mut g = AtssGeom { g: ng as i64, a: na as i64, levels: per_level.len() as i32, k_total: kt as i32, ..Default::default() };
    let mut lo = 0i64;
    for (l, &c) in per_level.iter().enumerate() {
        g.start[l] = lo;
        g.count[l] = c as i64;
        g.k[l] = ks[l] as i32;
        lo += c as i64;
    }
    g.center_in_gt = center_in_gt as i32;
    g.per_loc = per_loc;
    g.gt = gt;
    g.anchors = anchors;
    g.matches = matches;
    g.cand = work;
    g.cand_iou = work + (ng * kt * 4) as u64;
    g.best = work + (ng * kt * 8) as u64;
    g.grouped = g.best + (na * 4) as u64;
    let k = DetectKernels::of(b)?;
    call(b, unsafe { (k.det_atss)(&g, stream_ok(b, stream)?) }, "det_atss")
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
    call(b, unsafe { (k.det_bce)(&g, stream_ok(b, stream)?) }, "det_bce")
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
    call(b, unsafe { (k.det_giou_loss)(&g, stream_ok(b, stream)?) }, "det_giou_loss")
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
    call(b, unsafe { (k.det_head_loss)(&g, stream_ok(b, stream)?) }, "det_head_loss")
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
    call(b, unsafe { (k.det_seg_loss)(&g, stream_ok(b, stream)?) }, "det_seg_loss")
}

