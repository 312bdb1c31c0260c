// The engine family across the FFI boundary against PyTorch fixtures (scripts/fixtures/engine.py): norm +
// activation forward/backward, activations, scale + head permute, SGD over 3 steps; plus argument errors.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { NativeError } from "../../src/native/errors";
import {
  actBwd, actFwd, add, averageUpdate, normBwd, normFwd, permuteBwd, permuteFwd, scaleBwd, scaleFwd, sgdStep,
  type ActName,
} from "../../src/native/ops/engine";
import { readSafetensors, type Tensor } from "../../src/model/safetensors";
import { expectClose } from "./engine-close";

const FIX = join(import.meta.dir, "..", "fixtures", "engine");
const layers = readSafetensors(join(FIX, "layers.safetensors"));
const T = (name: string): Tensor => {
  const t = layers.tensors.get(name);
  if (!t) throw new Error(`fixture tensor ${name} missing`);
  return t;
};

describe("norm + activation vs torch", () => {
  for (const name of ["in", "in_relu", "in_lrelu", "gn_relu"]) {
    test(name, () => {
      const x = T(`${name}.x`);
      const [n, c, d, h, w] = x.shape as [number, number, number, number, number];
      const groups = Number(layers.metadata[`${name}.groups`]);
      const act = ({ none: "none", relu: "relu", leaky: "leaky" } as Record<string, ActName>)[layers.metadata[`${name}.act`]!]!;
      const g = { n, c, d, h, w, groups, act };
      const y = new Float32Array(x.data.length);
      const mean = new Float32Array(n * groups);
      const rstd = new Float32Array(n * groups);
      normFwd(g, x.data, T(`${name}.gamma`).data, T(`${name}.beta`).data, y, mean, rstd);
      expectClose(y, T(`${name}.y`).data, 1e-5, 1e-4, `${name}.y`);
      const dx = new Float32Array(x.data.length);
      const dg = new Float32Array(c);
      const db = new Float32Array(c);
      normBwd(g, x.data, T(`${name}.beta`).data, T(`${name}.dy`).data, T(`${name}.gamma`).data, mean, rstd, dx, dg, db);
      expectClose(dx, T(`${name}.dx`).data, 1e-4, 1e-3, `${name}.dx`);
      expectClose(dg, T(`${name}.dgamma`).data, 1e-4, 1e-4, `${name}.dgamma`);
      expectClose(db, T(`${name}.dbeta`).data, 1e-4, 1e-4, `${name}.dbeta`);
      // accumulate: a second backward adds the same again
      normBwd({ ...g, accDx: true, accParams: true }, x.data, T(`${name}.beta`).data, T(`${name}.dy`).data, T(`${name}.gamma`).data, mean, rstd, dx, dg, db);
      expectClose(dx, T(`${name}.dx`).data.map((v) => 2 * v), 2e-4, 1e-3, `${name}.dx accumulated`);
      expectClose(db, T(`${name}.dbeta`).data.map((v) => 2 * v), 2e-4, 1e-4, `${name}.dbeta accumulated`);
      // in place: dx over x
      const xd = x.data.slice();
      normBwd(g, xd, T(`${name}.beta`).data, T(`${name}.dy`).data, T(`${name}.gamma`).data, mean, rstd, xd, dg, db);
      expectClose(xd, T(`${name}.dx`).data, 1e-4, 1e-3, `${name}.dx in place`);
    });
  }
});

test("relu and leaky relu, out of place and in place", () => {
  for (const [name, act] of [["relu", "relu"], ["lrelu", "leaky"]] as const) {
    const x = T(`${name}.x`).data;
    const y = new Float32Array(x.length);
    actFwd(act, x, y);
    expectClose(y, T(`${name}.y`).data, 0, 0, `${name}.y`);
    const z = x.slice();
    actFwd(act, z, z);
    expectClose(z, y, 0, 0, `${name}.y in place`);
    const dx = new Float32Array(x.length);
    actBwd(act, y, T(`${name}.dy`).data, dx);
    expectClose(dx, T(`${name}.dx`).data, 0, 0, `${name}.dx`);
    const g = T(`${name}.dy`).data.slice();
    actBwd(act, y, g, g);
    expectClose(g, dx, 0, 0, `${name}.dx in place`);
  }
});

test("scale then head permute (regressor output path)", () => {
  const x = T("scale_permute.x");
  const [n, c, d, h, w] = x.shape as [number, number, number, number, number];
  const s = d * h * w;
  const scale = T("scale_permute.scale").data;
  const scaled = new Float32Array(x.data.length);
  scaleFwd(x.data, scale, scaled);
  const y = new Float32Array(n * s * c);
  const geom = { n, c, s, yStride: s * c, yOff: 0 };
  permuteFwd(geom, scaled, y);
  expectClose(y, T("scale_permute.y").data, 1e-7, 1e-6, "y");
  const dperm = new Float32Array(x.data.length);
  permuteBwd(geom, T("scale_permute.dy").data, dperm);
  const dx = new Float32Array(x.data.length);
  const ds = new Float32Array(1);
  scaleBwd(x.data, dperm, scale, dx, ds);
  expectClose(dx, T("scale_permute.dx").data, 1e-7, 1e-6, "dx");
  expectClose(ds, T("scale_permute.dscale").data, 1e-5, 1e-5, "dscale");
  scaleBwd(x.data, dperm, scale, dperm, ds, { accScale: true });
  expectClose(dperm, dx, 0, 0, "dx in place");
  expectClose(ds, T("scale_permute.dscale").data.map((v) => 2 * v), 2e-5, 1e-5, "dscale accumulated");
});

test("add, also in place", () => {
  const a = Float32Array.from([1, 2, 3]);
  const b = Float32Array.from([10, 20, 30]);
  const y = new Float32Array(3);
  add(a, b, y);
  expect([...y]).toEqual([11, 22, 33]);
  add(a, b, a);
  expect([...a]).toEqual([11, 22, 33]);
});

test("SGD with Nesterov momentum and masked weight decay matches torch over 3 steps", () => {
  const f = readSafetensors(join(FIX, "sgd.safetensors"));
  const get = (k: string) => f.tensors.get(k)!.data;
  const p = new Float32Array([...get("p0"), ...get("p1")]);
  const mask = new Uint8Array(p.length).fill(1, 0, 50);
  const mom = new Float32Array(p.length);
  const h = { lr: Number(f.metadata.lr), momentum: 0.9, weightDecay: Number(f.metadata.weight_decay), nesterov: true };
  for (let k = 0; k < 3; k++) {
    sgdStep(h, p, new Float32Array([...get(`g0.${k}`), ...get(`g1.${k}`)]), mom, mask);
    expectClose(p, [...get(`p0.${k}`), ...get(`p1.${k}`)], 1e-7, 1e-6, `params after step ${k}`);
  }
});

test("parameter average", () => {
  const avg = new Float32Array(4);
  averageUpdate(avg, Float32Array.from([1, 2, 3, 4]), 0);
  averageUpdate(avg, Float32Array.from([3, 4, 5, 6]), 1);
  expect([...avg]).toEqual([2, 3, 4, 5]);
});

test("bad arguments are NativeErrors, not crashes", () => {
  const g = { n: 1, c: 4, d: 2, h: 2, w: 2, groups: 4, act: "relu" as const };
  const x = new Float32Array(32);
  const y = new Float32Array(31);
  const err = (f: () => void) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(NativeError);
      return (e as NativeError).message;
    }
    throw new Error("expected a NativeError");
  };
  expect(err(() => normFwd(g, x, new Float32Array(4), new Float32Array(4), y, new Float32Array(4), new Float32Array(4)))).toContain(
    "y has 31 elements, expected 32",
  );
  expect(err(() => normFwd({ ...g, groups: 3 }, x, new Float32Array(4), new Float32Array(4), x.slice(), new Float32Array(3), new Float32Array(3)))).toContain(
    "divide channels",
  );
  expect(err(() => normFwd({ ...g, d: 0 }, new Float32Array(0), new Float32Array(4), new Float32Array(4), new Float32Array(0), new Float32Array(4), new Float32Array(4)))).toContain(
    "positive",
  );
  expect(err(() => actFwd("relu", x, x.subarray(1)))).toContain("overlap");
  expect(err(() => permuteFwd({ n: 1, c: 2, s: 3, yStride: 5, yOff: 0 }, new Float32Array(6), new Float32Array(5)))).toContain("do not fit");
  expect(err(() => sgdStep({ lr: 0.1, momentum: 0.9, weightDecay: 0, nesterov: true }, x, x.slice(), x.slice(), new Uint8Array(3)))).toContain(
    "mask has 3 elements",
  );
  expect(err(() => scaleFwd(x, new Float32Array(2), x.slice()))).toContain("scale has");
});
