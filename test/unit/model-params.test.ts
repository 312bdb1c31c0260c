// Pure TS parts of the model: architecture shapes, parameter names/shapes, the spec's initialisation
// statistics, the decay mask, the shared hash, and safetensors round trips.
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ArchPlan, archShapes } from "../../src/model/arch";
import { decayMask, hashUniform, initParams, loadParams, paramCount, paramSpecs, PRIOR_BIAS, saveParams, view } from "../../src/model/params";
import { parseSafetensors, serializeSafetensors } from "../../src/model/safetensors";

const plan6: ArchPlan = {
  in_channels: 1, start_channels: 32, max_channels: 320, fpn_channels: 128, head_channels: 128, classifier_classes: 1,
  conv_kernels: Array.from({ length: 7 }, () => [3, 3, 3] as [number, number, number]),
  strides: Array.from({ length: 6 }, () => [2, 2, 2] as [number, number, number]),
  decoder_levels: [2, 3, 4, 5, 6],
};

test("channels and levels follow spec §5.1/5.2 (6 pools)", () => {
  const sh = archShapes(plan6, [128, 128, 128], 2);
  expect(sh.enc).toEqual([32, 64, 128, 256, 320, 320, 320]);
  expect(sh.dec).toEqual([32, 64, 128, 128, 128, 128, 128]);
  expect(sh.dims[6]).toEqual([2, 2, 2]);
  expect(sh.anchorsTotal).toBe(27 * (32 ** 3 + 16 ** 3 + 8 ** 3 + 4 ** 3 + 2 ** 3));
  expect(() => archShapes(plan6, [100, 128, 128], 2)).toThrow(/not divisible/);
  expect(() => archShapes({ ...plan6, head_channels: 40 }, [128, 128, 128], 2)).toThrow(/multiple of 16/);
});

test("parameter names, shapes, initialisation and decay mask", () => {
  const sh = archShapes(plan6, [128, 128, 128], 2);
  const specs = paramSpecs(plan6, sh);
  const by = new Map(specs.map((s) => [s.name, s]));
  expect(by.get("encoder.stages.1.convs.0.0.conv.weight")!.shape).toEqual([64, 32, 3, 3, 3]);
  expect(by.get("decoder.up.P3.conv.weight")!.shape).toEqual([128, 128, 2, 2, 2]);
  expect(by.get("head.classifier.conv_out.conv.weight")!.shape).toEqual([27, 128, 3, 3, 3]);
  expect(by.get("head.regressor.scales.4.scale")!.shape).toEqual([]);
  expect(by.get("segmenter.conv_out.conv.weight")!.shape).toEqual([2, 32, 1, 1, 1]);
  const buf = new Float32Array(paramCount(specs));
  initParams(specs, buf, 42);
  const stats = (name: string) => {
    const v = view(buf, by.get(name)!);
    let m = 0, s2 = 0, mx = 0;
    for (const x of v) { m += x; s2 += x * x; mx = Math.max(mx, Math.abs(x)); }
    return { mean: m / v.length, std: Math.sqrt(s2 / v.length - (m / v.length) ** 2), max: mx };
  };
  const w = stats("encoder.stages.2.convs.0.1.conv.weight");
  const bound = 1 / Math.sqrt(128 * 27);
  expect(w.max).toBeLessThanOrEqual(bound);
  expect(Math.abs(w.std - bound / Math.sqrt(3)) / (bound / Math.sqrt(3))).toBeLessThan(0.02);
  // ConvTranspose3d fan_in = Cout * k (torch's quirk)
  expect(stats("decoder.up.P1.conv.weight").max).toBeLessThanOrEqual(1 / Math.sqrt(32 * 8));
  const hw = stats("head.regressor.conv_internal.c_in.conv.weight");
  expect(Math.abs(hw.std - 0.01)).toBeLessThan(0.0003);
  expect(Math.abs(hw.mean)).toBeLessThan(0.0003);
  expect([...view(buf, by.get("head.classifier.conv_out.conv.bias")!)].every((v) => v === Math.fround(PRIOR_BIAS))).toBe(true);
  expect(Math.fround(PRIOR_BIAS)).toBeCloseTo(-4.59512, 4);
  expect([...view(buf, by.get("head.regressor.conv_out.conv.bias")!)].every((v) => v === 0)).toBe(true);
  expect([...view(buf, by.get("encoder.stages.0.convs.0.0.norm.weight")!)].every((v) => v === 1)).toBe(true);
  const mask = decayMask(specs);
  expect(mask[by.get("encoder.stages.0.convs.0.0.norm.bias")!.offset]).toBe(0);
  expect(mask[by.get("encoder.stages.0.convs.0.0.conv.weight")!.offset]).toBe(1);
  // level 1 is neither a detection level nor level 0: its output conv never gets a gradient
  expect(mask[by.get("decoder.out.P1.0.conv.weight")!.offset]).toBe(0);
  expect(mask[by.get("decoder.out.P2.0.conv.weight")!.offset]).toBe(1);
  // the same seed gives the same parameters
  const again = new Float32Array(buf.length);
  initParams(specs, again, 42);
  expect(again).toEqual(buf);
});

test("hashUniform is the documented integer hash", () => {
  const u = hashUniform(5, 7);
  for (const v of u) expect(v >= -1 && v < 1).toBe(true);
  expect(hashUniform(5, 7)).toEqual(u);
  expect(hashUniform(5, 8)[0]).not.toBe(u[0]);
});

test("safetensors round trip, metadata and errors; params save/load by name", () => {
  const t = new Map([
    ["a.weight", { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
    ["s", { shape: [], data: Float32Array.from([0.5]) }],
  ]);
  const bytes = serializeSafetensors(t, { format: "pt" });
  const back = parseSafetensors(bytes);
  expect(back.metadata).toEqual({ format: "pt" });
  expect(back.tensors.get("a.weight")!.shape).toEqual([2, 3]);
  expect([...back.tensors.get("s")!.data]).toEqual([0.5]);
  expect(() => parseSafetensors(bytes.subarray(0, 12))).toThrow(/header length/);
  const sh = archShapes({ ...plan6, start_channels: 8, fpn_channels: 16, head_channels: 16 }, [64, 64, 64], 1);
  const specs = paramSpecs({ ...plan6, start_channels: 8, fpn_channels: 16, head_channels: 16 }, sh);
  const buf = new Float32Array(paramCount(specs));
  initParams(specs, buf, 1);
  const path = join(mkdtempSync(join(tmpdir(), "nndet-")), "model.safetensors");
  saveParams(path, specs, buf, { arch: "RetinaUNetV001" });
  const loaded = new Float32Array(buf.length);
  expect(loadParams(path, specs, loaded)).toEqual({ arch: "RetinaUNetV001" });
  expect(loaded).toEqual(buf);
  expect(() => loadParams(path, paramSpecs(plan6, archShapes(plan6, [128, 128, 128], 1)), new Float32Array(10))).toThrow(/has shape/);
});
