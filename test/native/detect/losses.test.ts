// Parity of the detection losses and their gradients with nnDetection's autograd outputs
// (test/fixtures/parity/losses.json): GIoULoss, BCEWithLogitsLossOneHot, the v001 head loss with fixed
// sampled indices, and DiCESegmenterFgBg's CE + Dice. Tolerances as the fixtures' README advises.
import { describe, expect, test } from "bun:test";
import { bceOneHotLoss, detectionHeadLoss, giouLoss, segLoss } from "../../../src/native";
import { expectClose, f32, fixture, flat, i32 } from "./util";

const LOSS = [1e-6, 1e-5] as const;
const GRAD = [1e-6, 1e-4] as const;

describe("losses.json", () => {
  const fx = fixture("losses.json");
  fx.cases.forEach((c: any, k: number) => {
    test(`${k} ${c.kind}`, () => {
      if (c.kind === "giou") {
        const r = giouLoss(f32(c.pred_boxes), f32(c.target_boxes), 1e-7);
        expectClose([r.loss], [c.loss], ...LOSS, "loss");
        expectClose(r.giou, flat(c.giou_per_box), ...LOSS, "giou per box");
        expectClose(r.grad, flat(c.grad_pred_boxes), ...GRAD, "grad");
      } else if (c.kind === "bce") {
        const r = bceOneHotLoss(f32(c.logits), i32(c.targets), c.num_classes);
        expectClose([r.loss], [c.loss], ...LOSS, "loss");
        expectClose(r.grad, flat(c.grad_logits), ...GRAD, "grad");
      } else if (c.kind === "head") {
        const r = detectionHeadLoss({
          logits: f32(c.box_logits), deltas: f32(c.box_deltas), anchors: f32(c.anchors), matchedGt: f32(c.matched_gt_boxes),
          labels: i32(c.target_labels), pos: i32(c.sampled_pos_inds), neg: i32(c.sampled_neg_inds), numClasses: c.num_classes,
        });
        expectClose([r.lossCls], [c.loss_cls], ...LOSS, "loss_cls");
        if (c.loss_reg === null) expect(r.lossReg).toBeNull();
        else expectClose([r.lossReg!], [c.loss_reg], ...LOSS, "loss_reg");
        expectClose(r.gradLogits, flat(c.grad_box_logits), ...GRAD, "grad logits");
        const gd = c.grad_box_deltas === null ? new Array(r.gradDeltas.length).fill(0) : flat(c.grad_box_deltas);
        expectClose(r.gradDeltas, gd, ...GRAD, "grad deltas");
      } else if (c.kind === "seg") {
        const logits = f32(c.seg_logits);
        const target = i32(c.target);
        const batch = c.seg_logits.length;
        const r = segLoss(logits, target, batch, { batchDice: c.batch_dice });
        expectClose([r.segCe], [c.seg_ce], ...LOSS, "seg_ce");
        expectClose([r.segDice], [c.seg_dice], ...LOSS, "seg_dice");
        expectClose(r.grad, flat(c.grad_total), ...GRAD, "grad total");
        const d = segLoss(logits, target, batch, { batchDice: c.batch_dice, wCe: 0, wDice: 1 });
        expectClose(d.grad, flat(c.grad_dice), ...GRAD, "grad dice");
      } else throw new Error(`unknown kind ${c.kind}`);
    });
  });
});
