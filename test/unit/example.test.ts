// The toy example generator: nnDetection's object sizes at 256, scaling, determinism, shapes of cube and tube,
// several non-overlapping objects.
import { expect, test } from "bun:test";
import { exampleDataset, generateCase, objectScale } from "../../src/data/example";

test("object scale: nnDetection's 16..31 and wall 4 at 256; sane at small sizes", () => {
  expect(objectScale(256)).toEqual({ lo: 16, hi: 32, wall: 4 });
  expect(objectScale(128)).toEqual({ lo: 8, hi: 16, wall: 2 });
  for (const n of [8, 16, 32, 64]) {
    const s = objectScale(n);
    expect(s.wall).toBeGreaterThanOrEqual(1);
    expect(s.lo).toBeGreaterThan(2 * s.wall); // a tube keeps a hole
    expect(s.hi).toBeLessThanOrEqual(n);
  }
});

test("deterministic per (seed, case); different across cases and seeds", () => {
  const a = generateCase(3, 24, 2, 5);
  const b = generateCase(3, 24, 2, 5);
  expect(Buffer.compare(Buffer.from(a.image.buffer), Buffer.from(b.image.buffer))).toBe(0);
  expect(Buffer.compare(Buffer.from(a.mask.buffer), Buffer.from(b.mask.buffer))).toBe(0);
  expect(Buffer.compare(Buffer.from(generateCase(4, 24, 2, 5).image.buffer), Buffer.from(a.image.buffer))).not.toBe(0);
  expect(Buffer.compare(Buffer.from(generateCase(3, 24, 2, 6).image.buffer), Buffer.from(a.image.buffer))).not.toBe(0);
});

test("objects: cube or tube open along axis 0, +0.4 clipped, background uniform in [0, 1)", () => {
  const n = 64;
  const { lo, hi, wall } = objectScale(n);
  const seen = new Set<number>();
  for (let idx = 0; idx < 12; idx++) {
    const c = generateCase(idx, n, 1, 0);
    const cls = c.instances["1"]!;
    seen.add(cls);
    // bounding box of the mask
    const min = [n, n, n];
    const max = [-1, -1, -1];
    let count = 0;
    let outside = 0;
    let bg = 0;
    let bgSum = 0;
    for (let z = 0; z < n; z++)
      for (let y = 0; y < n; y++)
        for (let x = 0; x < n; x++) {
          const i = (z * n + y) * n + x;
          const v = c.image[i]!;
          if (!(v >= 0 && v <= 1)) outside++;
          if (c.mask[i] === 1) {
            count++;
            [z, y, x].forEach((p, a) => {
              min[a] = Math.min(min[a]!, p);
              max[a] = Math.max(max[a]!, p);
            });
          } else {
            bg++;
            bgSum += v;
          }
        }
    expect(outside).toBe(0);
    const size = max[0]! - min[0]! + 1;
    expect(max[1]! - min[1]! + 1).toBe(size);
    expect(max[2]! - min[2]! + 1).toBe(size);
    expect(size >= lo && size < hi).toBe(true);
    const inner = size - 2 * wall;
    expect(count).toBe(cls === 0 ? size ** 3 : size * (size * size - inner * inner));
    expect(Math.abs(bgSum / bg - 0.5)).toBeLessThan(0.01);
  }
  expect(seen).toEqual(new Set([0, 1]));
});

test("several objects: ids 1..K, each its own class, no shared or touching voxels", () => {
  const n = 48;
  const c = generateCase(0, n, 6, 1);
  expect(Object.keys(c.instances)).toEqual(["1", "2", "3", "4", "5", "6"]);
  const ids = new Set(c.mask);
  expect(ids).toEqual(new Set([0, 1, 2, 3, 4, 5, 6]));
  // no voxel of one instance is a neighbour (along axis 2) of another
  let touching = 0;
  for (let z = 0; z < n; z++)
    for (let y = 0; y < n; y++)
      for (let x = 0; x < n - 1; x++) {
        const i = (z * n + y) * n + x;
        const a = c.mask[i]!;
        const b = c.mask[i + 1]!;
        if (!(a === 0 || b === 0 || a === b)) touching++;
      }
  expect(touching).toBe(0);
  expect(() => generateCase(0, 16, 200, 1)).toThrow("cannot place 200");
});

test("dataset.json as nnDetection writes it", () => {
  expect(exampleDataset("Task000D3_Example")).toEqual({
    task: "Task000D3_Example",
    name: "Example",
    target_class: null,
    test_labels: true,
    labels: { "0": "Square", "1": "SquareHole" },
    modalities: { "0": "MRI" },
    dim: 3,
  });
});
