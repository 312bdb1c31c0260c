// NIfTI IO against nibabel-written fixtures (scripts/fixtures/nifti.py): every datatype, scaling, oblique and
// sheared sform/qform (ITK's choice), 4D with one volume, big-endian, NIfTI-2; write/read round trips; errors.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memberIndex } from "../../src/io/gzip";
import { defaultGeometry, type Geometry, readNifti, writeNifti } from "../../src/io/nifti";

const FIX = join(import.meta.dir, "../fixtures/nifti");
const expected = JSON.parse(readFileSync(join(FIX, "expected.json"), "utf8")) as {
  cases: Record<string, { file: string; error?: string; shape?: number[]; data?: number[] } & Partial<Geometry> & { source?: string }>;
  real: Record<string, { shape: number[]; sum: number; first: number; last: number } & Geometry & { source: string }>;
};

function close(name: string, got: ArrayLike<number>, want: ArrayLike<number>, atol = 1e-5, rtol = 1e-6): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const ok = Math.abs(got[i]! - want[i]!) <= atol + rtol * Math.abs(want[i]!);
    if (!ok) throw new Error(`${name}[${i}]: got ${got[i]}, expected ${want[i]}`);
  }
}

function sameGeometry(name: string, got: Geometry, want: Geometry, atol = 1e-4): void {
  close(`${name}.spacing`, got.spacing, want.spacing, atol);
  close(`${name}.origin`, got.origin, want.origin, atol);
  close(`${name}.direction`, got.direction, want.direction, atol);
}

describe("nibabel fixtures", () => {
  for (const [name, c] of Object.entries(expected.cases)) {
    test(name, async () => {
      const file = join(FIX, c.file);
      if (c.error) {
        await expect(readNifti(file)).rejects.toThrow(c.error);
        await expect(readNifti(file)).rejects.toThrow(file);
        return;
      }
      const img = await readNifti(file);
      expect(img.shape).toEqual(c.shape as [number, number, number]);
      expect(img.geometry.source).toBe(c.source as "sform");
      sameGeometry(name, img.geometry, c as Geometry);
      expect(img.spacing).toEqual([img.geometry.spacing[2], img.geometry.spacing[1], img.geometry.spacing[0]]);
      // float32 is what nnDetection sees; compare at float32 precision
      close(name, img.data, c.data!, 1e-6, 1e-6);
    });
  }
});

describe("real files", () => {
  for (const [name, r] of Object.entries(expected.real)) {
    test(name, async () => {
      const img = await readNifti(join(FIX, "real", name));
      expect(img.shape).toEqual(r.shape as [number, number, number]);
      expect(img.geometry.source).toBe(r.source as "sform");
      sameGeometry(name, img.geometry, r);
      let sum = 0;
      for (let i = 0; i < img.data.length; i++) sum += img.data[i]!;
      close(`${name}.sum`, [sum, img.data[0]!, img.data[img.data.length - 1]!], [r.sum, r.first, r.last], 1e-3, 1e-6);
    });
  }

  test("the six orientations place the same content at the same world coordinates", async () => {
    const centroids: Record<string, number[]> = {};
    const brightest: Record<string, number[]> = {};
    for (const o of ["RAS", "LPI", "ASL", "PSR", "IRA", "SLP"]) {
      const img = await readNifti(join(FIX, "real", `${o}.nii.gz`));
      const [nk, nj, ni] = img.shape;
      const { spacing: s, origin: org, direction: d } = img.geometry;
      const world = (i: number, j: number, k: number) =>
        [0, 1, 2].map((r) => org[r]! + d[3 * r]! * s[0] * i + d[3 * r + 1]! * s[1] * j + d[3 * r + 2]! * s[2] * k);
      let w = 0;
      const c = [0, 0, 0];
      let best = -1;
      let bestW: number[] = [];
      for (let k = 0; k < nk; k++)
        for (let j = 0; j < nj; j++)
          for (let i = 0; i < ni; i++) {
            const v = img.data[(k * nj + j) * ni + i]!;
            if (v <= 0) continue;
            const p = world(i, j, k);
            w += v;
            for (let a = 0; a < 3; a++) c[a]! += v * p[a]!;
            // the first voxel (in world-sorted order) holding the maximum: a distinctive point
            if (v > best) {
              best = v;
              bestW = p;
            }
          }
      centroids[o] = c.map((x) => x / w);
      brightest[o] = bestW;
    }
    const ref = centroids.RAS!;
    for (const [o, c] of Object.entries(centroids)) close(`centroid ${o}`, c, ref, 1e-3);
    // the maximum may be reached by several voxels; the centroid agreement above is the main check, and every
    // orientation must find a maximum within the volume's extent (sanity)
    for (const b of Object.values(brightest)) expect(b.length).toBe(3);
  });

  test("a non-orthogonal sform next to a qform is read through the qform (ITK), on the real shear file shape", async () => {
    // shear_gantry_tilt.nii.gz (not copied, 1.3 MB) has sform and qform code 2 and a sheared sform: the generated
    // fixture shear_with_qform reproduces that header layout; here we check the rule picks the qform.
    const img = await readNifti(join(FIX, expected.cases.shear_with_qform!.file));
    expect(img.geometry.source).toBe("qform");
  });
});

describe("round trips", () => {
  const dir = mkdtempSync(join(tmpdir(), "nndet-nifti-"));
  const shape: [number, number, number] = [7, 6, 5];
  const n = 7 * 6 * 5;
  const oblique: Geometry = (() => {
    const a = 0.3;
    const b = -0.5;
    const rz = [Math.cos(a), -Math.sin(a), 0, Math.sin(a), Math.cos(a), 0, 0, 0, 1];
    const rx = [1, 0, 0, 0, Math.cos(b), -Math.sin(b), 0, Math.sin(b), Math.cos(b)];
    const m = new Array(9).fill(0);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) m[3 * i + j] += rz[3 * i + k]! * rx[3 * k + j]!;
    return { spacing: [0.7, 1.25, 3], origin: [-12.5, 40.25, 7], direction: m };
  })();
  const flipped: Geometry = { spacing: [1, 2, 4], origin: [10, -20, 30], direction: [-1, 0, 0, 0, 1, 0, 0, 0, -1] };
  const permuted: Geometry = { spacing: [1, 2, 4], origin: [1, 2, 3], direction: [0, 0, 1, 1, 0, 0, 0, 1, 0] };
  const arrays = {
    f32: Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1000),
    f64: Float64Array.from({ length: n }, (_, i) => i / 7),
    i16: Int16Array.from({ length: n }, (_, i) => (i * 331) % 65536),
    u8: Uint8Array.from({ length: n }, (_, i) => i % 256),
    i32: Int32Array.from({ length: n }, (_, i) => (i - 100) * 1024),
  };
  for (const [dt, data] of Object.entries(arrays)) {
    for (const [gname, g] of Object.entries({ identity: defaultGeometry([1, 2, 3]), oblique, flipped, permuted })) {
      for (const ext of [".nii.gz", ".nii"]) {
        test(`${dt} ${gname} ${ext}`, async () => {
          const f = join(dir, `${dt}_${gname}${ext}`);
          await writeNifti(f, { data, shape, geometry: g });
          const img = await readNifti(f);
          expect(img.shape).toEqual(shape);
          expect(img.dtype).toBe(dt as "f32");
          const want = Float32Array.from(data as ArrayLike<number>);
          expect(Buffer.compare(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), Buffer.from(want.buffer))).toBe(0);
          // exact where float32 represents the geometry; oblique within float32 precision
          sameGeometry(gname, img.geometry, g, gname === "oblique" ? 1e-6 : 0);
        });
      }
    }
  }

  test("large volumes are written as indexed gzip members and read back (nibabel reads them too: bench)", async () => {
    const big = new Float32Array(96 * 96 * 96 * 2);
    for (let i = 0; i < big.length; i++) big[i] = (i % 9973) * 0.5;
    const f = join(dir, "big.nii.gz");
    await writeNifti(f, { data: big, shape: [192, 96, 96], geometry: flipped }, { level: 1 });
    const idx = memberIndex(new Uint8Array(readFileSync(f)));
    expect(idx && idx.length).toBeGreaterThan(2);
    const img = await readNifti(f);
    expect(Buffer.compare(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), Buffer.from(big.buffer))).toBe(0);
  });

  test("errors name the file: empty, truncated gzip, wrong magic, dims larger than the data", async () => {
    const good = join(dir, "good.nii.gz");
    await writeNifti(good, { data: arrays.f32, shape, geometry: oblique });
    const bytes = readFileSync(good);
    const cases: [string, Uint8Array, string][] = [
      ["empty.nii.gz", new Uint8Array(0), "empty file"],
      ["trunc.nii.gz", bytes.subarray(0, bytes.length - 20), "truncated"],
      ["magic.nii", new Uint8Array(400), "not a NIfTI file"],
      ["notgz.nii.gz", new Uint8Array(400).fill(7), "not a gzip file"],
    ];
    const raw = join(dir, "raw.nii");
    await writeNifti(raw, { data: arrays.f32, shape, geometry: oblique });
    const rb = new Uint8Array(readFileSync(raw));
    cases.push(["short.nii", rb.subarray(0, rb.length - 4), "dims 5x6x7 of f32 need"]);
    const badMagic = rb.slice();
    badMagic[345] = 0x78;
    cases.push(["badmagic.nii", badMagic, "wrong NIfTI-1 magic"]);
    for (const [name, b, msg] of cases) {
      const f = join(dir, name);
      writeFileSync(f, b);
      await expect(readNifti(f)).rejects.toThrow(msg);
      await expect(readNifti(f)).rejects.toThrow(f);
    }
  });

  test("cleanup", () => rmSync(dir, { recursive: true, force: true }));
});
