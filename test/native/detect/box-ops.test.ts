// Parity of the box ops, coder, anchors, instances->boxes and TTA/tile weights with nnDetection's own outputs
// (test/fixtures/parity: box_ops.json, coder.json, anchors.json, instances_to_boxes.json).
import { describe, expect, test } from "bun:test";
import {
  boxAreasCenters, boxCenterDist, boxGiou, boxGiouElementwise, boxIou, boxIouElementwise, clipBoxes,
  decodeBoxes, encodeBoxes, generateAnchors, instancesToBoxes, removeSmallBoxes,
} from "../../../src/native";
import { anchorCounts, anchorLevels } from "../../../src/model/anchors";
import { boxCentersTs } from "../../../src/model/boxes";
import { expectClose, expectSame, f32, fixture, flat, i32 } from "./util";

const TOL = [1e-6, 1e-6] as const;
const EXACT = [0, 0] as const;

describe("box_ops.json", () => {
  const fx = fixture("box_ops.json");
  for (const c of fx.cases) {
    test(c.name, () => {
      const a = f32(c.boxes1);
      const b = f32(c.boxes2);
      expectClose(boxIou(a, b), flat(c.iou), ...EXACT, "iou (bit-exact: same f32 operation order)");
      expectClose(boxGiou(a, b), flat(c.giou), ...EXACT, "giou");
      expectClose(boxGiou(a, b, 1e-7), flat(c.giou_eps1e7), ...TOL, "giou eps 1e-7");
      expectClose(boxCenterDist(a, b), flat(c.center_dist), ...TOL, "center_dist");
      const ac1 = boxAreasCenters(a);
      const ac2 = boxAreasCenters(b);
      expectClose(ac1.areas, flat(c.area1), ...EXACT, "area1");
      expectClose(ac2.areas, flat(c.area2), ...TOL, "area2");
      expectClose(ac1.centers, flat(c.center1), ...TOL, "center1");
      expectClose(ac2.centers, flat(c.center2), ...TOL, "center2");
      expectClose(boxCentersTs(a), flat(c.center1), 0, 0, "TS centres");
      expectClose(clipBoxes(a.slice(), c.clip_shape), flat(c.clip1), 0, 0, "clip1");
      expectSame(removeSmallBoxes(a, c.min_size), flat(c.remove_small_keep1), "remove_small_keep1");
      // The elementwise ops are the diagonal of the pairwise ones.
      const n = Math.min(a.length, b.length) / 6;
      const iou = boxIou(a, b);
      const giou = boxGiou(a, b, 1e-7);
      const m = b.length / 6;
      const ei = boxIouElementwise(a.subarray(0, 6 * n), b.subarray(0, 6 * n));
      const eg = boxGiouElementwise(a.subarray(0, 6 * n), b.subarray(0, 6 * n), 1e-7);
      for (let i = 0; i < n; i++) {
        expectClose([ei[i]!], [iou[i * m + i]!], 0, 0, `elementwise iou ${i}`);
        expectClose([eg[i]!], [giou[i * m + i]!], 0, 0, `elementwise giou ${i}`);
      }
    });
  }
});

describe("coder.json", () => {
  const fx = fixture("coder.json");
  test("clip constant", () => expect(Math.fround(Math.log(1000 / 16))).toBe(Math.fround(fx.bbox_xform_clip)));
  for (const c of fx.cases) {
    test(c.name, () => {
      const anchors = f32(c.anchors);
      const w = f32(fx.weights);
      const enc = encodeBoxes(f32(c.gt), anchors, w);
      expectRel(enc, flat(c.encoded), "encoded");
      expectRel(decodeBoxes(f32(c.rel_codes), anchors, w), flat(c.decoded), "decoded");
      expectRel(decodeBoxes(f32(c.encoded), anchors, w), flat(c.roundtrip), "roundtrip");
    });
  }
});

/** coder tolerance of the README: |a - b| <= 1e-5 * max(1, |ref|). */
function expectRel(got: Float32Array, ref: number[], what: string) {
  for (let i = 0; i < ref.length; i++) {
    const tol = 1e-5 * Math.max(1, Math.abs(ref[i]!));
    if (!(Math.abs(got[i]! - ref[i]!) <= tol) && !(Number.isNaN(got[i]!) && Number.isNaN(ref[i]!)))
      throw new Error(`${what}: element ${i} is ${got[i]}, expected ${ref[i]}`);
  }
}

describe("anchors.json", () => {
  const fx = fixture("anchors.json");
  for (const c of fx.cases) {
    test(c.name, () => {
      const levels = anchorLevels(c, c.image_size, c.fmap_sizes);
      expect(levels.map((l) => [...l.stride])).toEqual(c.strides);
      const { perLevel, perLocation } = anchorCounts(levels);
      expect(perLevel.map((n) => n * c.batch)).toEqual(c.num_anchors_per_level);
      expect(perLocation).toBe(c.num_anchors_per_location[0]);
      expectClose(generateAnchors(levels), flat(c.anchors), 0, 0, "anchors");
    });
  }
});

describe("instances_to_boxes.json", () => {
  const fx = fixture("instances_to_boxes.json");
  for (const c of fx.cases) {
    test(c.name, () => {
      const { ids, boxes } = instancesToBoxes(i32(c.mask), c.shape);
      expectSame(ids, flat(c.np_instances), "instances");
      expectSame(ids, flat(c.torch_instances), "torch instances");
      expectSame(boxes, flat(c.np_boxes), "np boxes");
      expectSame(boxes, flat(c.torch_boxes), "torch boxes");
      const classes = Array.from(ids, (id) => c.instance_classes[String(id)]);
      expectSame(classes, flat(c.np_classes), "classes");
    });
  }
});
