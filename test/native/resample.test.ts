// The preprocessing family across the FFI boundary: resampling against scikit-image 0.19 fixtures
// (scripts/fixtures/prep.py; images order 3 and 1, labels order 0), the fast path against the plain one,
// hole filling against scipy's binary_fill_holes, and argument errors.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { readNpy } from "../../src/io/npy";
import { NativeError, nonzeroMask, resample3d, resample3dLabels, type Shape3 } from "../../src/native";

const dir = join(import.meta.dir, "..", "fixtures", "prep");
const index = (await Bun.file(join(dir, "index.json")).json()) as {
  resample: { name: string; input: string; output: string; order: 0 | 1 | 3; in: Shape3; out: Shape3 }[];
  fill_holes: { input: string; output: string }[];
};
const load = (name: string) => readNpy(join(dir, `${name}.npy`), { mmap: false });

describe("resample3d vs scikit-image resize", () => {
  for (const c of index.resample) {
    test(c.name, () => {
      const x = load(c.input);
      const ref = load(c.output);
      expect(x.shape).toEqual(c.in);
      if (c.order === 0) {
        const y = resample3dLabels(x.data as Int32Array, c.in, c.out);
        const r = ref.data as Int32Array;
        for (let i = 0; i < r.length; i++) if (y[i] !== r[i]) throw new Error(`${c.name}: element ${i}: ${y[i]} vs ${r[i]}`);
        return;
      }
      const y = resample3d(x.data as Float32Array, c.in, c.out, c.order);
      const r = ref.data as Float32Array;
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of x.data as Float32Array) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
      const tol = 1e-4 * (hi - lo);
      for (let i = 0; i < r.length; i++) {
        if (!(Math.abs(y[i]! - r[i]!) <= tol)) throw new Error(`${c.name}: element ${i}: ${y[i]} vs ${r[i]} (tol ${tol})`);
      }
      const plain = resample3d(x.data as Float32Array, c.in, c.out, c.order, { plain: true });
      for (let i = 0; i < r.length; i++) {
        if (!(Math.abs(y[i]! - plain[i]!) <= 1e-6 * (hi - lo))) throw new Error(`${c.name}: fast vs plain at ${i}`);
      }
    });
  }
});

describe("nonzeroMask", () => {
  test("hole filling equals scipy binary_fill_holes", () => {
    const f = index.fill_holes[0]!;
    const m = load(f.input);
    const ref = load(f.output).data as Uint8Array;
    const data = Float32Array.from(m.data as Uint8Array);
    const { mask, bbox } = nonzeroMask(data, 1, m.shape as Shape3);
    for (let i = 0; i < ref.length; i++) if (mask[i] !== ref[i]) throw new Error(`mask differs at ${i}`);
    expect(bbox).not.toBeNull();
  });

  test("empty data has no box; wrong sizes are BufferSize errors", () => {
    expect(nonzeroMask(new Float32Array(8), 1, [2, 2, 2]).bbox).toBeNull();
    expect(() => resample3d(new Float32Array(7), [2, 2, 2], [3, 3, 3], 3)).toThrow(NativeError);
    expect(() => resample3d(new Float32Array(8), [2, 2, 2], [3, 3, 3], 2 as 3)).toThrow("order must be 0, 1 or 3");
  });
});
