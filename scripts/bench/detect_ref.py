"""PyTorch CPU reference for scripts/bench-detect.ts: nnDetection's detection functions re-implemented
faithfully in torch (nndet/core/boxes/ops.py box_iou/box_center_dist, matcher/atss.py ATSSMatcher,
nms.py nms_cpu/batched_nms, coder.py decode_single, retina.py postprocess_detections_single_image,
sampler.py HardNegativeSamplerBatched, inference/detection/wbc.py wbc/batched_wbc), timed on inputs the TS
script wrote.

usage: /usr/bin/python3 scripts/bench/detect_ref.py DIR THREADS REPEATS  -> one JSON object on stdout,
{case: {s: median seconds, count: positive anchors / kept boxes / clusters, to cross-check the results}}
DIR holds cases.json (list of {name, kind, files, params}) and the raw little-endian arrays it names.
"""
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch


def box_area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) * (b[:, 5] - b[:, 4])


def box_iou(b1, b2):
    v1, v2 = box_area(b1), box_area(b2)
    x1 = torch.max(b1[:, None, 0], b2[:, 0])
    y1 = torch.max(b1[:, None, 1], b2[:, 1])
    x2 = torch.min(b1[:, None, 2], b2[:, 2])
    y2 = torch.min(b1[:, None, 3], b2[:, 3])
    z1 = torch.max(b1[:, None, 4], b2[:, 4])
    z2 = torch.min(b1[:, None, 5], b2[:, 5])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0) * (z2 - z1).clamp(min=0)
    return inter / (v1[:, None] + v2 - inter)


def box_center(b):
    return torch.stack(((b[:, 0] + b[:, 2]) / 2., (b[:, 1] + b[:, 3]) / 2., (b[:, 4] + b[:, 5]) / 2.), dim=1)


def box_center_dist(b1, b2):
    c1, c2 = box_center(b1), box_center(b2)
    return ((c1[:, None] - c2[None]) ** 2).sum(-1).sqrt(), c1, c2


def atss(boxes, anchors, num_anchors_per_level, num_anchors_per_loc, num_candidates=4):
    """ATSSMatcher.compute_matches (center_in_gt=False)."""
    num_gt, num_anchors = boxes.shape[0], anchors.shape[0]
    distances, _, _ = box_center_dist(boxes, anchors)
    candidate_idx = []
    start = 0
    for apl in num_anchors_per_level:
        end = start + apl
        k = min(num_candidates * num_anchors_per_loc, apl)
        _, idx = distances[:, start:end].topk(k, dim=1, largest=False)
        candidate_idx.append(idx + start)
        start = end
    candidate_idx = torch.cat(candidate_idx, dim=1)
    quality = box_iou(boxes, anchors)
    cand_ious = quality.gather(1, candidate_idx)
    thresh = cand_ious.mean(dim=1) + cand_ious.std(dim=1)
    is_pos = cand_ious >= thresh[:, None]
    for ng in range(num_gt):
        candidate_idx[ng, :] += ng * num_anchors
    ious_inf = torch.full_like(quality, -100).view(-1)
    index = candidate_idx.view(-1)[is_pos.view(-1)]
    ious_inf[index] = quality.view(-1)[index]
    ious_inf = ious_inf.view_as(quality)
    vals, matches = ious_inf.max(dim=0)
    matches[vals == -100] = -1
    return matches


def nms_cpu(boxes, scores, thresh):
    """nndet/core/boxes/nms.py nms_cpu: full IoU matrix, then the greedy loop."""
    ious = box_iou(boxes, boxes)
    _, idx = torch.sort(scores, descending=True)
    keep = []
    while idx.nelement() > 0:
        keep.append(idx[0])
        idx = idx[torch.where(ious[idx[0]][idx] <= thresh)[0]]
    return torch.stack(keep)


def nms_cpu_rows(boxes, scores, thresh):
    """The same loop with the IoU row computed per kept box (the N x N matrix of 10^5 boxes needs 40 GB)."""
    _, idx = torch.sort(scores, descending=True)
    keep = []
    while idx.nelement() > 0:
        keep.append(idx[0])
        row = box_iou(boxes[idx[0]][None], boxes[idx])[0]
        idx = idx[torch.where(row <= thresh)[0]]
    return torch.stack(keep)


def wbc(boxes, scores, weights, iou_thresh, n_exp_preds, score_thresh):
    """nndet/inference/detection/wbc.py wbc with use_area=False, missing_weight=1."""
    ious = box_iou(boxes, boxes)
    _, pool = scores.sort(descending=True)
    out_b, out_s = [], []
    while pool.nelement() > 0:
        row = ious[pool[0]][pool]
        m = row > iou_thresh
        idx = pool[m]
        w = row[m] * weights[idx]
        ws = w * scores[idx]
        n_missing = torch.clamp(n_exp_preds[idx].float().mean() - idx.numel(), min=0)
        score = ws.sum() / (w.sum() + n_missing * w.mean())
        if score > score_thresh:
            out_b.append((ws[:, None] * boxes[idx]).sum(0) / ws.sum())
            out_s.append(score)
        pool = pool[row <= iou_thresh]
    return out_b, out_s


def batched_wbc(boxes, scores, labels, weights, iou_thresh, n_exp, score_thresh):
    out = []
    for c in labels.unique():
        m = labels == c
        out.append(wbc(boxes[m], scores[m], weights[m], iou_thresh, n_exp[m], score_thresh))
    return out


def decode(rel_codes, boxes, clip=math.log(1000. / 16)):
    """BoxCoderND.decode_single with weights 1."""
    out = []
    for lo, hi, dc, ds in ((0, 2, 0, 2), (1, 3, 1, 3), (4, 5, 4, 5)):
        w = boxes[:, hi] - boxes[:, lo]
        c = boxes[:, lo] + 0.5 * w
        pc = rel_codes[:, dc] * w + c
        pw = torch.exp(torch.clamp(rel_codes[:, ds], max=clip)) * w
        out.append((pc - 0.5 * pw, pc + 0.5 * pw))
    (x1, x2), (y1, y2), (z1, z2) = out
    return torch.stack((x1, y1, x2, y2, z1, z2), dim=1)


def batched_nms(boxes, scores, idxs, thresh):
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return nms_cpu(boxes + offsets[:, None], scores, thresh)


def postprocess(deltas, anchors, probs, shape, topk=10000, score_thresh=0., min_size=0.01, nms_thresh=0.6, det=100):
    """BaseRetinaNet.postprocess_detections_single_image after decoding every anchor (as nnDetection does)."""
    boxes = decode(deltas, anchors)
    for k, ax in enumerate((0, 1, 0, 1, 2, 2)):
        boxes[:, k].clamp_(min=0, max=shape[ax])
    c = probs.shape[1]
    num_topk = min(topk, boxes.size(0))
    p, idx = probs.flatten().sort(descending=True)
    p, idx = p[:num_topk], idx[:num_topk]
    keep = p > score_thresh
    p, idx = p[keep], idx[keep]
    b, labels = boxes[idx // c], idx % c
    ws, hs, ds = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1], b[:, 5] - b[:, 4]
    keep = (ws >= min_size) & (hs >= min_size) & (ds >= min_size)
    b, p, labels = b[keep], p[keep], labels[keep]
    keep = batched_nms(b, p, labels, nms_thresh)[:det]
    return b[keep], p[keep], labels[keep]


def hnm_sample(labels, logits, batch, bspi=32, pf=0.33, min_neg=1, pool_size=20):
    """HardNegativeSamplerBatched with fg probs = max sigmoid over classes."""
    fg = logits.sigmoid().max(dim=1)[0]
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_pos = min(positive.numel(), int(bspi * batch * pf))
    pos = positive[torch.randperm(positive.numel())[:num_pos]]
    num_neg = min(negative.numel(), max(int(max(1, num_pos) * abs(1 - 1. / pf)), min_neg))
    pool = min(negative.numel(), int(num_neg * pool_size))
    _, pool_idx = fg[negative].topk(pool, sorted=True)
    neg = negative[pool_idx][torch.randperm(pool)[:num_neg]]
    return pos, neg


def load(d, name, dtype, shape):
    return torch.from_numpy(np.fromfile(d / name, dtype=dtype).reshape(shape))


def main():
    d, threads, repeats = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    cases = json.loads((d / "cases.json").read_text())
    res = {}
    with torch.no_grad():
        for c in cases:
            p = c["params"]
            if c["kind"] == "atss":
                gt = load(d, c["files"]["gt"], np.float32, (-1, 6))
                an = load(d, c["files"]["anchors"], np.float32, (-1, 6))
                fn = lambda: atss(gt, an, p["per_level"], p["per_loc"])
            elif c["kind"] == "nms":
                b = load(d, c["files"]["boxes"], np.float32, (-1, 6))
                s = load(d, c["files"]["scores"], np.float32, (-1,))
                f = nms_cpu if p["full_matrix"] else nms_cpu_rows
                fn = lambda: f(b, s, p["thr"])
            elif c["kind"] == "postprocess":
                dl = load(d, c["files"]["deltas"], np.float32, (-1, 6))
                an = load(d, c["files"]["anchors"], np.float32, (-1, 6))
                pr = load(d, c["files"]["probs"], np.float32, (dl.shape[0], -1))
                fn = lambda: postprocess(dl, an, pr, p["shape"])
            elif c["kind"] == "sampler":
                lab = load(d, c["files"]["labels"], np.int32, (-1,))
                lg = load(d, c["files"]["logits"], np.float32, (lab.shape[0], -1))
                fn = lambda: hnm_sample(lab, lg, p["batch"])
            else:
                b = load(d, c["files"]["boxes"], np.float32, (-1, 6))
                s = load(d, c["files"]["scores"], np.float32, (-1,))
                lab = load(d, c["files"]["labels"], np.int32, (-1,)).float()
                w = load(d, c["files"]["weights"], np.float32, (-1,))
                ne = load(d, c["files"]["n_exp"], np.float32, (-1,))
                fn = lambda: batched_wbc(b, s, lab, w, p["thr"], ne, 0.0)
            fn()
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                r = fn()
                times.append(time.perf_counter() - t)
            if c["kind"] == "nms":
                count = int(r.numel())
            elif c["kind"] == "atss":
                count = int((r >= 0).sum())
            elif c["kind"] == "postprocess":
                count = int(r[1].numel())
            elif c["kind"] == "sampler":
                count = int(r[0].numel() + r[1].numel())
            else:
                count = sum(len(s) for _, s in r)
            res[c["name"]] = {"s": statistics.median(times), "count": count}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
