// The whole RetinaUNetV001 graph against PyTorch (scripts/fixtures/engine.py `net`, graph in
// scripts/fixtures/engine_net.py): a tiny anisotropic plan (2 pools, 8 start channels, 2 detection levels,
// K = 2, patch 8x8x12, batch 2) with hash-derived parameters, input and upstream gradients. Checks the head
// and segmentation outputs, every parameter gradient (first 64 values + 4 hash projections) and the
// parameter change after 3 SGD steps (Nesterov, masked weight decay).
import { expect, test } from "bun:test";
import { join } from "node:path";
import type { ArchPlan, Vec3 } from "../../src/model/arch";
import { hashParams, hashUniform, view } from "../../src/model/params";
import { RetinaUNet } from "../../src/model/retina-unet";
import { readSafetensors } from "../../src/model/safetensors";
import { expectClose } from "./engine-close";

const fix = readSafetensors(join(import.meta.dir, "..", "fixtures", "engine", "net.safetensors"));
const F = (k: string) => {
  const t = fix.tensors.get(k);
  if (!t) throw new Error(`fixture tensor ${k} missing`);
  return t.data;
};
const raw = JSON.parse(fix.metadata.plan!) as ArchPlan & { patch: Vec3; batch: number };
const names = JSON.parse(fix.metadata.names!) as string[];

function fill(dst: Float32Array, seed: number, scale: number): void {
  const u = hashUniform(dst.length, seed);
  for (let i = 0; i < dst.length; i++) dst[i] = u[i]! * scale;
}

function every<T>(a: ArrayLike<T>, k: number): T[] {
  const out: T[] = [];
  for (let i = 0; i < a.length; i += k) out.push(a[i]!);
  return out;
}

function checkSummary(prefix: string, name: string, v: Float32Array, atol: number, rtol: number): void {
  expectClose(v.subarray(0, 64), F(`${prefix}.${name}.head`), atol, rtol, `${prefix} ${name}`);
  const proj = F(`${prefix}.${name}.proj`);
  let mag = 0;
  for (let i = 0; i < v.length; i++) mag += Math.abs(v[i]!);
  for (let k = 0; k < 4; k++) {
    const h = hashUniform(v.length, 1000 + k);
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i]! * h[i]!;
    if (!(Math.abs(s - proj[k]!) <= atol * 8 + rtol * mag)) {
      throw new Error(`${prefix} ${name} projection ${k}: ${s} vs reference ${proj[k]} (sum |v| ${mag})`);
    }
  }
}

test("RetinaUNetV001 forward, backward and 3 SGD steps match PyTorch on a tiny plan", () => {
  const net = new RetinaUNet(raw, raw.patch, raw.batch);
  expect(net.g.specs.map((s) => s.name)).toEqual(names);
  hashParams(net.g.specs, net.params);
  fill(net.input, 7, 1);
  net.forward();
  expectClose(every(net.cls, 3), F("out.cls3"), 2e-5, 1e-3, "cls");
  expectClose(every(net.reg, 7), F("out.reg7"), 2e-5, 1e-3, "reg");
  expectClose(net.seg, F("out.seg"), 2e-5, 1e-3, "seg");
  fill(net.dcls, 101, 0.1);
  fill(net.dreg, 102, 0.1);
  fill(net.dseg, 103, 0.1);
  net.backward();
  for (const s of net.g.specs) checkSummary("grad", s.name, view(net.grads, s), 1e-4, 2e-3);
  const init = net.params.slice();
  const h = { lr: 0.01, momentum: 0.9, weightDecay: 0.01, nesterov: true };
  net.step(h);
  for (let k = 0; k < 2; k++) {
    fill(net.dcls, 101, 0.1);
    fill(net.dreg, 102, 0.1);
    fill(net.dseg, 103, 0.1);
    net.forward();
    net.backward();
    net.step(h);
  }
  const delta = net.params.map((v, i) => v - init[i]!);
  for (const s of net.g.specs) checkSummary("delta", s.name, view(delta, s), 1e-5, 2e-3);
});

test("inference mode allocates no gradient state and gives the same outputs", () => {
  const train = new RetinaUNet(raw, raw.patch, raw.batch);
  const infer = new RetinaUNet(raw, raw.patch, raw.batch, { training: false });
  expect(infer.grads.length + infer.momentum.length + infer.dcls.length).toBe(0);
  expect(infer.g.buffers.some((b) => b.kind === "gradient")).toBe(false);
  hashParams(train.g.specs, train.params);
  infer.params.set(train.params);
  fill(train.input, 7, 1);
  infer.input.set(train.input);
  train.forward();
  infer.forward();
  expect(infer.cls).toEqual(train.cls);
  expect(infer.reg).toEqual(train.reg);
  expect(infer.seg).toEqual(train.seg);
});

test("a plan whose patch does not fit the strides is refused", () => {
  expect(() => new RetinaUNet(raw, [9, 8, 12], 1)).toThrow(/not divisible/);
  expect(() => new RetinaUNet(raw, raw.patch, 0)).toThrow(/batch/);
});

test("a level nothing reads (neither a detection level nor level 0) is skipped and never updated", () => {
  const plan: ArchPlan = { ...raw, conv_kernels: [[3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]], strides: [[2, 2, 2], [2, 2, 2], [2, 2, 2]], decoder_levels: [2, 3] };
  const net = new RetinaUNet(plan, [16, 16, 16], 1);
  expect(net.g.levels[1]!.used).toBe(false);
  hashParams(net.g.specs, net.params);
  fill(net.input, 7, 1);
  net.forward();
  fill(net.dcls, 101, 0.1);
  fill(net.dreg, 102, 0.1);
  fill(net.dseg, 103, 0.1);
  net.backward();
  const by = new Map(net.g.specs.map((s) => [s.name, s]));
  const unused = by.get("decoder.out.P1.0.conv.weight")!;
  const before = view(net.params, unused).slice();
  expect(view(net.grads, unused).every((v) => v === 0)).toBe(true);
  expect(net.grads.every((v) => Number.isFinite(v))).toBe(true);
  expect(view(net.grads, by.get("decoder.lateral.P1.0.conv.weight")!).some((v) => v !== 0)).toBe(true);
  net.step({ lr: 0.01, momentum: 0.9, weightDecay: 0.01, nesterov: true });
  expect(view(net.params, unused)).toEqual(before);
});
