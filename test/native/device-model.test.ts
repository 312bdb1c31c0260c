// The whole RetinaUNetV001 training step on a device backend (src/model/retina-unet-device.ts) against the
// CPU model on the tiny fixture plan (2 pools, 8 start channels, 2 detection levels, K = 2, patch 8x8x12,
// batch 2): outputs after forward, every parameter gradient after backward, and the parameters after one
// SGD step. Runs on the CPU emulator of the device kernels everywhere, and on the GPU too under
// ND_REQUIRE_CUDA=1 (scripts/gpu-check.sh; a GPU test that finds no GPU fails).
//
// NOTE: the device stores activations and their gradients in bf16 (fp32 accumulation, fp32 statistics and
// weight gradients), and this network's gradients are ill-conditioned at test size (rounding only the
// parameters of the fp32 CPU model to bf16 moves some gradients by 30%: ReLU masks flip, small instance
// norms cancel). So the CPU reference here runs the same schedule with the device's storage rounding: conv
// weights, the input and upstream gradients are bf16 values, and every tensor an op stores in bf16 on the
// device is rounded to bf16 after the CPU op. What remains is fp32 summation order (and the rare ReLU flip
// it causes): outputs agree to 1e-2, gradients to 3e-2 in relative L2 norm per tensor; a wiring or layout
// bug shows as errors of order 1.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { ArchPlan, Vec3 } from "../../src/model/arch";
import type { HeadNode } from "../../src/model/graph";
import { hashParams, hashUniform, view } from "../../src/model/params";
import { type ConvLayer, type NormLayer, RetinaUNet } from "../../src/model/retina-unet";
import { DeviceRetinaUNet } from "../../src/model/retina-unet-device";
import { type NetOps, runBackward, runForward } from "../../src/model/schedule";
import { readSafetensors } from "../../src/model/safetensors";
import { cudaReport, type DeviceKind } from "../../src/native";

const fix = readSafetensors(join(import.meta.dir, "..", "fixtures", "engine", "net.safetensors"));
const raw = JSON.parse(fix.metadata.plan!) as ArchPlan & { patch: Vec3; batch: number };
const requireCuda = process.env.ND_REQUIRE_CUDA === "1";

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16(x: number): number {
  f32[0] = x;
  u32[0] = ((u32[0]! + 0x7fff + ((u32[0]! >>> 16) & 1)) >>> 16) << 16;
  return f32[0]!;
}
function roundAll(a: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] = bf16(a[i]!);
}

function fill(dst: Float32Array, seed: number, scale: number): void {
  const u = hashUniform(dst.length, seed);
  for (let i = 0; i < dst.length; i++) dst[i] = bf16(u[i]! * scale);
}

function relErr(got: Float32Array, want: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** The CPU model's ops, rounding to bf16 whatever the device stores in bf16. */
function bf16Storage(net: RetinaUNet): NetOps {
  const r = (name: string) => roundAll(net.buffer(name));
  return {
    conv: (c: ConvLayer, x: string, y: string, acc: boolean) => (net.conv(c, x, y, acc), r(y)),
    convBwdWeight: (c: ConvLayer, x: string, dy: string) => net.convBwdWeight(c, x, dy),
    convBwdData: (c: ConvLayer, dy: string, dx: string, acc: boolean) => (net.convBwdData(c, dy, dx, acc), r(dx)),
    norm: (n: NormLayer, x: string, y: string) => (net.norm(n, x, y), r(y)),
    normBwd: (n: NormLayer, xdx: string, dy: string) => (net.normBwd(n, xdx, dy), r(xdx)),
    headOut: (h: HeadNode, o: string) => net.headOut(h, o),
    headOutBwd: (h: HeadNode, o: string) => (net.headOutBwd(h, o), r(o)),
    zeroGrads: () => net.zeroGrads(),
  };
}

const kinds: DeviceKind[] = ["emu"];
if (requireCuda) {
  expect(cudaReport().devices.length).toBeGreaterThan(0);
  kinds.push("cuda");
}

describe("RetinaUNet training step on a device backend vs the CPU model", () => {
  for (const kind of kinds) {
    test(`${kind}: forward, backward and one SGD step`, () => {
      const cpu = new RetinaUNet(raw, raw.patch, raw.batch);
      hashParams(cpu.g.specs, cpu.params);
      for (const s of cpu.g.specs) if (s.kind === "conv" || s.kind === "convT" || s.kind === "head") roundAll(view(cpu.params, s));
      fill(cpu.input, 7, 1);
      const ops = bf16Storage(cpu);
      const dev = new DeviceRetinaUNet(raw, raw.patch, raw.batch, { kind });
      try {
        expect(dev.paramCount).toBe(cpu.params.length);
        dev.setParams(cpu.params);
        dev.setInput(cpu.input);
        runForward(cpu.g, ops);
        dev.forward();
        const out = dev.outputs();
        for (const [name, got, want] of [["cls", out.cls, cpu.cls], ["reg", out.reg, cpu.reg], ["seg", out.seg, cpu.seg]] as const) {
          const e = relErr(got, want);
          if (!(e < 1e-2)) throw new Error(`${kind} ${name}: relative error ${e}`);
        }
        fill(cpu.dcls, 101, 0.1);
        fill(cpu.dreg, 102, 0.1);
        fill(cpu.dseg, 103, 0.1);
        dev.setOutputGrads(cpu.dcls, cpu.dreg, cpu.dseg);
        runBackward(cpu.g, ops);
        dev.backward();
        const grads = dev.getGrads();
        const errs = cpu.g.specs.map((s) => [s.name, relErr(view(grads, s), view(cpu.grads, s))] as const);
        if (process.env.ND_DEBUG) console.log(kind, [...errs].sort((a, b) => b[1] - a[1]).slice(0, 8));
        for (const [name, e] of errs) if (!(e < 3e-2)) throw new Error(`${kind} gradient of ${name}: relative error ${e}`);
        const before = cpu.params.slice();
        const h = { lr: 0.01, momentum: 0.9, weightDecay: 3e-5, nesterov: true };
        cpu.step(h);
        dev.step(h);
        const after = dev.getParams();
        const dCpu = cpu.params.map((v, i) => v - before[i]!);
        const dDev = after.map((v, i) => v - before[i]!);
        expect(relErr(dDev, dCpu)).toBeLessThan(3e-2);
      } finally {
        dev.free();
      }
    });

    test(`${kind}: the inference graph (shared slots, no gradients) gives the training graph's outputs`, () => {
      const train = new DeviceRetinaUNet(raw, raw.patch, raw.batch, { kind });
      const infer = new DeviceRetinaUNet(raw, raw.patch, raw.batch, { kind, training: false });
      try {
        expect(infer.arenaBytes).toBeLessThan(train.arenaBytes);
        const params = new Float32Array(train.paramCount);
        hashParams(train.g.specs, params);
        const input = new Float32Array(raw.batch * raw.in_channels * raw.patch[0] * raw.patch[1] * raw.patch[2]);
        fill(input, 7, 1);
        for (const net of [train, infer]) {
          net.setParams(params);
          net.setInput(input);
          net.forward();
        }
        const [a, b] = [train.outputs(), infer.outputs()];
        // the same kernels on the same values: identical
        expect([...b.cls]).toEqual([...a.cls]);
        expect([...b.reg]).toEqual([...a.reg]);
        expect([...b.seg]).toEqual([...a.seg]);
      } finally {
        train.free();
        infer.free();
      }
    });
  }
});
