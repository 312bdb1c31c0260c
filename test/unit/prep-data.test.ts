// Pure-TS parts of preprocessing: NumPy-compatible statistics, the box convention, normalisation rules,
// the .npy format round trip.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { boxIou, instancesToBoxes, pairwiseIous } from "../../src/data/boxes";
import { normalizeChannel, schemeForModality, useMaskForNorm } from "../../src/data/normalize";
import { intensityStats, percentile, roundHalfEven } from "../../src/data/stats";
import { readNpy, readNpyHeader, writeNpy } from "../../src/io/npy";

describe("stats (values from NumPy 1.24)", () => {
  const x = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
  test("percentiles, mean, population std", () => {
    expect([0.5, 10, 50].map((q) => percentile(x, q))).toEqual([1, 1, 4]);
    expect(percentile(x, 99.5)).toBeCloseTo(8.849999999999998, 14);
    expect(percentile([0.1, 0.7, 0.2], 33)).toBeCloseTo(0.166, 14);
    const s = intensityStats(x);
    expect(s.mean).toBe(4);
    expect(s.sd).toBeCloseTo(2.256304299271065, 14);
    expect([s.mn, s.mx, s.median]).toEqual([1, 9, 4]);
  });
  test("round half to even", () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, 2, 3]);
  });
});

describe("boxes", () => {
  test("voxels a..b give edges [a-1, b+1], ordered (x1, y1, x2, y2, z1, z2)", () => {
    const dims = [4, 5, 6];
    const seg = new Int32Array(120);
    seg[(1 * 5 + 2) * 6 + 3] = 2;
    seg[(2 * 5 + 4) * 6 + 5] = 2;
    seg[0] = 1;
    seg[1] = -1;
    const r = instancesToBoxes(seg, dims);
    expect(r.ids).toEqual([1, 2]);
    expect(r.boxes[0]).toEqual([-1, -1, 1, 1, -1, 1]);
    expect(r.boxes[1]).toEqual([0, 1, 3, 5, 2, 6]);
    expect(r.voxels).toEqual([1, 2]);
  });
  test("IoU is continuous, pairwise IoUs drop the diagonal", () => {
    const a = [0, 0, 2, 2, 0, 2];
    const b = [1, 0, 3, 2, 0, 2];
    expect(boxIou(a, b)).toBeCloseTo(4 / 12, 15);
    expect(pairwiseIous([a, b, [10, 10, 11, 11, 10, 11]] as never)).toEqual([4 / 12, 0, 4 / 12, 0, 0, 0]);
  });
});

describe("normalisation", () => {
  test("scheme and mask rules", () => {
    expect(["CT", "CT2", "MRI", "ct"].map(schemeForModality)).toEqual(["CT", "CT2", "nonCT", "nonCT"]);
    expect(useMaskForNorm("CT", [0.1])).toBe(false);
    expect(useMaskForNorm("T1", [0.5, 0.6, 0.99])).toBe(true);
    expect(useMaskForNorm("T1", [0.8, 0.9])).toBe(false);
  });
  test("CT clips to the foreground percentiles and z-scores with the foreground mean/std", () => {
    const x = new Float32Array([-2000, 0, 50, 3000]);
    const fg = { median: 0, mean: 40, sd: 20, mn: -100, mx: 200, percentile_00_5: -100, percentile_99_5: 200 };
    normalizeChannel(x, new Int32Array(4), "CT", false, fg);
    expect(Array.from(x)).toEqual([-7, -2, 0.5, 8]);
  });
  test("non-CT with mask: z-score inside seg >= 0, zero outside", () => {
    const x = new Float32Array([1, 2, 3, 100]);
    normalizeChannel(x, new Int32Array([0, 1, 0, -1]), "nonCT", true, null);
    const sd = Math.sqrt(2 / 3) + 1e-8;
    expect(x[0]).toBeCloseTo(-1 / sd, 6);
    expect(x[2]).toBeCloseTo(1 / sd, 6);
    expect(x[3]).toBe(0);
  });
  test("CT2 uses the case's statistics strictly inside the percentiles", () => {
    const x = new Float32Array([-500, 0, 10, 500]);
    const fg = { median: 0, mean: 0, sd: 1, mn: 0, mx: 0, percentile_00_5: -100, percentile_99_5: 100 };
    normalizeChannel(x, new Int32Array(4), "CT2", false, fg);
    // inside: 0 and 10 -> mean 5, std 5; clipped: -100, 0, 10, 100
    expect(Array.from(x)).toEqual([-21, -1, 1, 19]);
  });
});

describe("npy", () => {
  test("round trip of every dtype, mmap and read, atomic write leaves no temp file", () => {
    const dir = mkdtempSync(join(tmpdir(), "npy-"));
    try {
      const arrays = [new Float32Array([1.5, -2, 3]), new Int32Array([-1, 0, 7, 9, 11, 13]), new Uint8Array([1, 2]), new Float64Array([Math.PI])];
      const shapes = [[3], [2, 3], [1, 2], [1, 1, 1]];
      arrays.forEach((a, i) => {
        const p = join(dir, `a${i}.npy`);
        writeNpy(p, a, shapes[i]!);
        for (const mmap of [true, false]) {
          const r = readNpy(p, { mmap });
          expect(r.shape).toEqual(shapes[i]!);
          expect(Array.from(r.data as Float32Array)).toEqual(Array.from(a as Float32Array));
        }
        expect(readNpyHeader(p).dataOffset % 64).toBe(0);
      });
      expect(readdirSync(dir).filter((f) => f.includes(".tmp")).length).toBe(0);
      expect(() => writeNpy(join(dir, "bad.npy"), new Float32Array(3), [2, 2])).toThrow("has 4 elements");
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
