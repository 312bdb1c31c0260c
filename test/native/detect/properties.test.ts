// Properties and hostile input of the detection ops: NMS never keeps two same-class boxes above the
// threshold and its fast path equals the plain one; WBC of one box returns it dampened by n_exp; the sampler
// follows nnDetection's counts and is reproducible; NaN / inverted / empty / huge inputs give a NativeError
// or the documented result, never a crash.
import { describe, expect, test } from "bun:test";
import {
  atssMatch, boxIou, decodeBoxes, generateAnchors, hardNegativeSample, NativeError, nms3d, postprocessDetections, Status,
  wbc, weightedNms,
} from "../../../src/native";

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomBoxes(n: number, extent: number, maxSize: number, seed: number) {
  const r = rng(seed);
  const boxes = new Float32Array(n * 6);
  const scores = new Float32Array(n);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const [x, y, z] = [r() * extent, r() * extent, r() * extent];
    boxes.set([x, y, x + 1 + r() * maxSize, y + 1 + r() * maxSize, z, z + 1 + r() * maxSize], 6 * i);
    scores[i] = Math.round(r() * 64) / 64; // many ties
    labels[i] = Math.floor(r() * 3);
  }
  return { boxes, scores, labels };
}

function expectNativeError(f: () => unknown, code: number, fragment: string) {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(NativeError);
    expect((e as NativeError).code).toBe(code);
    expect((e as NativeError).message).toContain(fragment);
    return;
  }
  throw new Error(`expected a NativeError containing "${fragment}"`);
}

describe("nms properties", () => {
  test("no two kept same-class boxes overlap above the threshold; fast == plain", () => {
    const { boxes, scores, labels } = randomBoxes(3000, 100, 25, 1);
    for (const thr of [0.1, 0.3, 0.6]) {
      const keep = nms3d(boxes, scores, thr, { labels });
      expect(Array.from(nms3d(boxes, scores, thr, { labels, plain: true }))).toEqual(Array.from(keep));
      const kb = new Float32Array(keep.length * 6);
      keep.forEach((k, i) => kb.set(boxes.subarray(6 * k, 6 * k + 6), 6 * i));
      const iou = boxIou(kb, kb);
      for (let i = 0; i < keep.length; i++)
        for (let j = i + 1; j < keep.length; j++)
          if (labels[keep[i]!] === labels[keep[j]!] && iou[i * keep.length + j]! > Math.fround(thr))
            throw new Error(`kept ${keep[i]} and ${keep[j]} with IoU ${iou[i * keep.length + j]}`);
    }
  });

  test("10^6 boxes", { timeout: 60_000 }, () => {
    const { boxes, scores, labels } = randomBoxes(1_000_000, 2000, 12, 2);
    const keep = nms3d(boxes, scores, 0.5, { labels });
    expect(keep.length).toBeGreaterThan(900_000);
    expect(new Set(keep).size).toBe(keep.length);
  });

  test("hostile input", () => {
    const b = new Float32Array([0, 0, 2, 2, 0, 2, 1, 1, 3, 3, 1, 3]);
    expectNativeError(() => nms3d(b, new Float32Array([0.5, NaN]), 0.5), Status.InvalidArgument, "scores[1] is NaN");
    const nanBox = b.slice();
    nanBox[7] = NaN;
    expectNativeError(() => nms3d(nanBox, new Float32Array([1, 0.5]), 0.5), Status.InvalidArgument, "box 1 has a non-finite");
    const inv = b.slice();
    inv[2] = -1;
    expectNativeError(() => nms3d(inv, new Float32Array([1, 0.5]), 0.5), Status.InvalidArgument, "inverted");
    expectNativeError(() => nms3d(b, new Float32Array([1, 0.5]), NaN), Status.InvalidArgument, "threshold");
    expectNativeError(() => nms3d(b.subarray(0, 7), new Float32Array([1]), 0.5), Status.BufferSize, "multiple of 6");
    expect(() => weightedNms(b, new Float32Array([1, 0.5]), new Float32Array([1]), new Int32Array(2), 0.5)).toThrow(
      "weights has 1 elements, expected 2",
    );
    expect(nms3d(new Float32Array(0), new Float32Array(0), 0.5).length).toBe(0);
    // Two zero-volume boxes have IoU 0/0 = NaN, which suppresses (nnDetection's rule).
    const z = new Float32Array([0, 0, 0, 2, 0, 2, 5, 5, 5, 6, 5, 6]);
    expect(Array.from(nms3d(z, new Float32Array([1, 0.5]), 0.5))).toEqual([0]);
    expect(Number.isNaN(boxIou(z.subarray(0, 6), z.subarray(6))[0]!)).toBe(true);
    // thr >= 1: nothing but NaN pairs is suppressed (nnDetection's loop would not terminate).
    expect(Array.from(nms3d(b, new Float32Array([1, 1]), 1))).toEqual([0, 1]);
    // IoU propagates NaN coordinates like torch.
    expect(Number.isNaN(boxIou(nanBox.subarray(6), b.subarray(0, 6))[0]!)).toBe(true);
  });
});

describe("wbc properties", () => {
  test("one box comes back, its score divided by n_exp", () => {
    const b = new Float32Array([1, 2, 5, 7, 0, 3]);
    for (const nExp of [1, 8, 40]) {
      const r = wbc(b, new Float32Array([0.8]), new Int32Array([1]), new Float32Array([0.6]), new Float32Array([nExp]), 0.5);
      expect(Array.from(r.boxes)).toEqual(Array.from(b));
      expect(r.scores[0]).toBeCloseTo(0.8 / nExp, 6);
      expect(r.labels[0]).toBe(1);
    }
  });
  test("empty and hostile input", () => {
    const e = wbc(new Float32Array(0), new Float32Array(0), new Int32Array(0), new Float32Array(0), new Float32Array(0), 0.5);
    expect(e.scores.length).toBe(0);
    const b = new Float32Array([1, 2, 5, 7, 0, 3]);
    expectNativeError(
      () => wbc(b, new Float32Array([0.5]), new Int32Array([0]), new Float32Array([NaN]), new Float32Array([1]), 0.5),
      Status.InvalidArgument,
      "weights[0] is NaN",
    );
  });
});

describe("atss, sampler, postprocess edge cases", () => {
  const level = { widths: [4, 8], heights: [4], depths: [2, 4], fmapSize: [4, 4, 4] as const, stride: [4, 4, 4] as const };
  const anchors = generateAnchors([level]);
  test("atss: no GT is all background; inverted GT and bad level counts are errors", () => {
    const m = atssMatch(new Float32Array(0), anchors, [anchors.length / 6], 4);
    expect(m.every((v) => v === -1)).toBe(true);
    expectNativeError(() => atssMatch(new Float32Array([5, 5, 1, 9, 0, 4]), anchors, [anchors.length / 6], 4), Status.InvalidArgument, "inverted");
    expectNativeError(() => atssMatch(new Float32Array([1, 1, 5, 9, 0, 4]), anchors, [3], 4), Status.InvalidArgument, "sum to 3");
  });
  test("sampler: nnDetection counts, reproducible per seed", () => {
    const a = 200_000;
    const labels = new Int32Array(a).map((_, i) => (i % 997 === 0 ? 1 + (i % 2) : i % 11 === 0 ? -1 : 0));
    const r = rng(3);
    const logits = new Float32Array(a * 2).map(() => r() * 8 - 4);
    const s1 = hardNegativeSample(labels, logits, 2, { batch: 4, seed: 9 });
    expect([s1.pos.length, s1.neg.length]).toEqual([42, 85]);
    expect(Array.from(s1.pos).every((i) => labels[i]! >= 1)).toBe(true);
    expect(Array.from(s1.neg).every((i) => labels[i]! === 0)).toBe(true);
    const s2 = hardNegativeSample(labels, logits, 2, { batch: 4, seed: 9 });
    expect(Array.from(s2.neg)).toEqual(Array.from(s1.neg));
    const bg = labels.map((l) => (l > 0 ? 0 : l));
    const s3 = hardNegativeSample(bg, logits, 2, { batch: 4, seed: 1 });
    expect([s3.pos.length, s3.neg.length]).toEqual([0, 2]);
  });
  test("postprocess: NaN probabilities are never detections; decode-from-deltas equals decoded input", () => {
    const a = anchors.length / 6;
    const r = rng(5);
    const deltas = new Float32Array(a * 6).map(() => (r() - 0.5) * 0.4);
    const probs = new Float32Array(a * 2).map(() => r());
    probs[0] = NaN;
    const d = postprocessDetections({ boxes: deltas, anchors, probs, numClasses: 2, imageShape: [16, 16, 16] });
    expect(d.scores.length).toBeGreaterThan(0);
    expect(d.scores.every((s) => !Number.isNaN(s))).toBe(true);
    const e = postprocessDetections({ boxes: decodeBoxes(deltas, anchors), probs, numClasses: 2, imageShape: [16, 16, 16] });
    expect(Array.from(e.boxes)).toEqual(Array.from(d.boxes));
    expect(Array.from(e.labels)).toEqual(Array.from(d.labels));
    expectNativeError(
      () => postprocessDetections({ boxes: deltas.subarray(6), anchors, probs, numClasses: 2, imageShape: [16, 16, 16] }),
      Status.BufferSize,
      "deltas",
    );
  });
});
