// Cropping to the non-zero region and the per-case fingerprint on in-memory arrays.
import { describe, expect, test } from "bun:test";
import { cropToNonzero } from "../../src/data/crop";
import { analyzeCase, buildFingerprint, foregroundSamples, parseFingerprint } from "../../src/data/fingerprint";
import { instancesToBoxes } from "../../src/data/boxes";
import { labelBoxes, NativeError, roundLabels } from "../../src/native";

function makeCase() {
  // 2 channels of [6, 7, 8]; non-zero region axis0 1..4, axis1 2..5, axis2 1..6 with an enclosed zero voxel.
  const dims: [number, number, number] = [6, 7, 8];
  const n = 6 * 7 * 8;
  const data = new Float32Array(2 * n);
  const seg = new Int32Array(n);
  const at = (a: number, b: number, c: number) => (a * 7 + b) * 8 + c;
  for (let a = 1; a <= 4; a++) for (let b = 2; b <= 5; b++) for (let c = 1; c <= 6; c++) data[at(a, b, c)] = 1 + a;
  data[at(2, 3, 3)] = 0; // a hole: filled, so it stays inside
  data[n + at(0, 0, 0)] = 0;
  seg[at(2, 3, 4)] = 1;
  seg[at(3, 4, 4)] = 1;
  seg[at(1, 2, 1)] = 2;
  return { dims, data, seg, at };
}

describe("cropToNonzero", () => {
  test("crops to the hole-filled non-zero box and marks outside as -1", () => {
    const { dims, data, seg } = makeCase();
    const c = cropToNonzero(data, 2, dims, seg);
    expect(c.bbox).toEqual([[1, 5], [2, 6], [1, 7]]);
    expect(c.shape).toEqual([4, 4, 6]);
    expect(c.data.length).toBe(2 * 96);
    // The filled hole is inside (seg 0, not -1); everything else in the box is non-zero.
    const hole = (1 * 4 + 1) * 6 + 2;
    expect(c.seg[hole]).toBe(0);
    expect(c.data[hole]).toBe(0);
    expect(c.classes).toEqual([0, 1, 2]);
    // Without a seg (test images): 0 inside.
    const t = cropToNonzero(data, 2, dims, null);
    expect(t.classes).toEqual([0]);
  });

  test("an all-zero image keeps the whole volume, seg -1 everywhere", () => {
    const c = cropToNonzero(new Float32Array(8), 1, [2, 2, 2], null);
    expect(c.shape).toEqual([2, 2, 2]);
    expect(Array.from(c.seg)).toEqual(Array(8).fill(-1));
  });
});

describe("fingerprint", () => {
  test("case analysis: counts, volumes, boxes, IoUs, foreground samples; dataset round trip", () => {
    const { dims, data, seg } = makeCase();
    const c = cropToNonzero(data, 2, dims, seg);
    const samples = foregroundSamples(c);
    expect(samples[0]!.length).toBe(1); // 3 fg voxels, every 10th -> the first
    const meta = { case: "c0", originalSize: dims, spacing: [2, 1, 0.5], instances: { "1": 0, "2": 1, "3": 1 } };
    const f = analyzeCase(meta, c, samples, 2);
    expect(f.numInstances).toEqual({ "0": 1, "1": 2 });
    expect(f.volumePerClass).toEqual({ "0": 2, "1": 1 });
    expect(f.boxIds).toEqual([1, 2]);
    expect(f.boxes[1]).toEqual([-1, -1, 1, 1, -1, 1]);
    expect(f.lostInstances).toEqual([3]);
    expect(f.allIous.length).toBe(2);
    const fp = buildFingerprint({ modalities: { "0": "CT", "1": "MR" }, labels: { "0": "a", "1": "b" } }, [f], [samples]);
    expect(fp.sizeReductions[0]).toBeCloseTo(96 / 336, 12);
    const back = parseFingerprint(JSON.parse(JSON.stringify(fp)));
    expect(back.intensityProperties["0"]!.mean).toBe(samples[0]![0]!);
    expect(() => parseFingerprint({ ...fp, version: 99 })).toThrow("invalid fingerprint at 'version'");
  });
});

describe("labelBoxes (native) equals instancesToBoxes (TS)", () => {
  test("random label volumes with gaps in the ids, -1 and 0", () => {
    for (const [dims, k] of [[[9, 7, 11], 13], [[1, 5, 3], 4], [[16, 3, 2], 40]] as [[number, number, number], number][]) {
      let x = 12345;
      const seg = Int32Array.from({ length: dims[0] * dims[1] * dims[2] }, () => {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const v = (x >>> 8) % k;
        return v === 5 ? 0 : v - 1;
      });
      expect(labelBoxes(seg, dims)).toEqual(instancesToBoxes(seg, dims));
    }
    expect(labelBoxes(new Int32Array(8).fill(-1), [2, 2, 2])).toEqual({ ids: [], boxes: [], voxels: [] });
    expect(() => labelBoxes(new Int32Array(7), [2, 2, 2])).toThrow(NativeError);
    expect(Array.from(roundLabels(new Float32Array([0.2, 1.7, -1, 3])))).toEqual([0, 2, -1, 3]);
  });
});
