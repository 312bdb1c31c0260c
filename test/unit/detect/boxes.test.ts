// Parity of the pure-TS inference box helpers with nnDetection's outputs: the TTA box inverse of the 8
// mirror transforms (test/fixtures/parity/tta.json) and the ensembler's tile weights (wbc.json).
import { describe, expect, test } from "bun:test";
import { invertMirrorBoxes, tileWeights, ttaTransforms, TTA_MIRROR_DIMS } from "../../../src/model/boxes";
import { expectClose, f32, fixture, flat } from "../../native/detect/util";

describe("tta.json", () => {
  const fx = fixture("tta.json");
  test("transform order", () => expect(TTA_MIRROR_DIMS.map((d) => [...d])).toEqual(fx.mirror_dims));
  test("-ntta subsets", () => expect([0, 3, 4, 8].map((n) => ttaTransforms(n).length)).toEqual([1, 1, 4, 8]));
  fx.cases.forEach((c: { tile_size: number[]; boxes: number[][]; inverse_boxes: number[][][] }, k: number) => {
    test(`case ${k}`, () => {
      const b = f32(c.boxes);
      TTA_MIRROR_DIMS.forEach((dims, t) =>
        expectClose(invertMirrorBoxes(b, dims, c.tile_size), flat(c.inverse_boxes[t]!), 0, 0, `transform ${t}`),
      );
    });
  });
});

describe("tile weights (wbc.json)", () => {
  const fx = fixture("wbc.json");
  fx.tile_weight_cases.forEach((c: { tile_size: number[]; centers: number[][]; weights: number[] }, k: number) => {
    test(`case ${k}`, () => expectClose(tileWeights(f32(c.centers), c.tile_size), c.weights, 1e-6, 1e-5, "weights"));
  });
});
