// Parity of ATSS, NMS (plain, class-wise, weighted), WBC and per-patch post-processing with nnDetection's own
// outputs (test/fixtures/parity: atss.json, nms.json, wbc.json, postprocess.json). Score ties are compared
// with the `*_stable` keys (ties by lower index), as the fixtures' README advises.
import { describe, expect, test } from "bun:test";
import {
  atssMatch, atssMatchLevels, BELOW_LOW_THRESHOLD, boxIou, matchedLabels, nms3d, postprocessDetections, wbc, weightedNms,
} from "../../../src/native";
import { anchorLevels } from "../../../src/model/anchors";
import { expectClose, expectSame, f32, fixture, flat, i32 } from "./util";

/**
 * Exact matches, except where the fixture flags `threshold_tie` (a candidate IoU equal to the adaptive
 * threshold, decided by torch's f32 rounding of mean/std): there an anchor may differ only if its IoU with
 * the GT involved lies within 1e-6 (relative) of that GT's threshold.
 */
function expectMatches(got: Int32Array, ref: number[], g: any, gt: Float32Array, anchors: Float32Array, what: string) {
  if (!g.threshold_tie) return expectSame(got, ref, what);
  for (let a = 0; a < ref.length; a++) {
    if (got[a] === ref[a]) continue;
    const k = got[a]! >= 0 ? got[a]! : ref[a]!;
    const iou = boxIou(gt.subarray(6 * k, 6 * k + 6), anchors.subarray(6 * a, 6 * a + 6))[0]!;
    const thr = g.debug_iou_threshold[k] as number;
    if (!(Math.abs(iou - thr) <= 1e-6 * Math.abs(thr)))
      throw new Error(`${what}: anchor ${a} matched ${got[a]}, expected ${ref[a]} (IoU ${iou}, threshold ${thr})`);
  }
}

describe("atss.json", () => {
  const fx = fixture("atss.json");
  test("sentinels", () => expect([BELOW_LOW_THRESHOLD, fx.BELOW_LOW_THRESHOLD]).toEqual([-1, -1]));
  for (const c of fx.cases) {
    const anchors = f32(c.anchors);
    for (const g of c.gt_sets) {
      test(`${c.name} / ${g.kind}`, () => {
        const gt = f32(g.gt_boxes);
        for (const plain of [false, true]) {
          const m = atssMatch(gt, anchors, c.num_anchors_per_level, c.num_anchors_per_location, { plain });
          expectMatches(m, flat(g.matches), g, gt, anchors, `matches (plain ${plain})`);
          const mc = atssMatch(gt, anchors, c.num_anchors_per_level, c.num_anchors_per_location, { plain, centerInGt: true });
          expectMatches(mc, flat(g.matches_center_in_gt), g, gt, anchors, `matches_center_in_gt (plain ${plain})`);
        }
        const m = atssMatch(gt, anchors, c.num_anchors_per_level, c.num_anchors_per_location);
        // The on-demand grid gives the same matches as the anchor array.
        const levels = anchorLevels(c.anchor_config, c.anchor_config.image_size, c.anchor_config.fmap_sizes);
        expectSame(atssMatchLevels(gt, levels), m, "matches from levels");
        expectSame(atssMatchLevels(gt, levels, { centerInGt: true }), atssMatch(gt, anchors, c.num_anchors_per_level, c.num_anchors_per_location, { centerInGt: true }), "center_in_gt from levels");
        expectSame(matchedLabels(g.threshold_tie ? i32(g.matches) : m, g.gt_classes), flat(g.labels), "labels");
      });
    }
  }
});

describe("nms.json", () => {
  const fx = fixture("nms.json");
  for (const c of fx.cases) {
    test(c.name, () => {
      const b = f32(c.boxes);
      const s = f32(c.scores);
      const l = i32(c.labels);
      for (const plain of [false, true]) {
        expectSame(nms3d(b, s, c.iou_threshold, { plain }), flat(c.keep_stable), `keep (plain ${plain})`);
        expectSame(nms3d(b, s, c.iou_threshold, { plain, labels: l }), flat(c.batched_keep_stable), `batched (plain ${plain})`);
        expectSame(weightedNms(b, s, f32(c.weights), l, c.iou_threshold, { plain }), flat(c.weighted_keep_stable), "weighted");
      }
    });
  }
});

describe("wbc.json", () => {
  const fx = fixture("wbc.json");
  for (const c of fx.cases) {
    test(c.name, () => {
      const r = wbc(f32(c.boxes), f32(c.scores), i32(c.labels), f32(c.weights), f32(c.n_exp_preds), c.iou_thresh, c.score_thresh);
      expectSame(r.labels, flat(c.out_labels_stable), "labels");
      expectClose(r.scores, flat(c.out_scores_stable), 1e-6, 1e-5, "scores");
      expectClose(r.boxes, flat(c.out_boxes_stable), 1e-6, 1e-5, "boxes");
    });
  }
  test("an IoU threshold of 1 or more is refused (the clustering would not end)", () => {
    const b = f32([0, 0, 2, 2, 0, 2]);
    expect(() => wbc(b, f32([0.9]), i32([0]), f32([1]), f32([1]), 1, 0)).toThrow(/below 1/);
  });
});

describe("postprocess.json", () => {
  const fx = fixture("postprocess.json");
  fx.cases.forEach((c: any, k: number) => {
    test(`case ${k}`, () => {
      const p = c.params;
      const r = postprocessDetections({
        boxes: f32(c.boxes),
        probs: f32(c.probs),
        numClasses: c.num_classes,
        imageShape: c.image_shape,
        params: {
          topkCandidates: p.topk_candidates, scoreThresh: p.score_thresh, detectionsPerImg: p.detections_per_img,
          removeSmallBoxes: p.remove_small_boxes, nmsThresh: p.nms_thresh,
        },
      });
      expectSame(r.labels, flat(c.out_labels), "labels");
      expectClose(r.scores, flat(c.out_scores), 0, 0, "scores");
      expectClose(r.boxes, flat(c.out_boxes), 1e-6, 1e-5, "boxes");
    });
  });
});
