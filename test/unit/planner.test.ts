// Planner D3V001 on in-memory fingerprints: the spec's worked examples (§3.7: the 256³ toy task at
// spacing 1 and an anisotropic 2.5×0.8×0.8 task), each rule on its own, anchors (§3.9 multipliers and
// their quirk), the memory-budget shrinking loop and the plan schema.
import { describe, expect, test } from "bun:test";
import { buildFingerprint, type CaseFingerprint } from "../../src/data/fingerprint";
import { anchorsPerLevel, filterBoxSizes, levelMultipliers, meanBestIou } from "../../src/plan/anchors";
import { analyticTrainingBytes, engineTrainingBytes, memoryBudget, NNDET_BUDGET_BYTES } from "../../src/plan/memory";
import { classWeights, planD3V001, planMode } from "../../src/plan/planner";
import { targetSpacing, transposeForward } from "../../src/plan/spacing";
import { decoderLevels, initialPatch, padShape, poolAndConv, shrinkPatch } from "../../src/plan/topology";
import { parsePlan } from "../../src/plan/types";

function fakeCase(name: string, size: number[], spacing: number[], boxes: number[][], cls: number[]): CaseFingerprint {
  const instances = Object.fromEntries(cls.map((c, i) => [String(i + 1), c]));
  return {
    case: name,
    originalSize: size,
    spacing,
    sizeAfterCropping: size,
    cropBbox: size.map((d) => [0, d] as [number, number]),
    classes: [0, 1],
    instances,
    numInstances: { "0": cls.filter((c) => c === 0).length, "1": cls.filter((c) => c === 1).length },
    hasClasses: [...new Set(cls)],
    volumePerClass: {},
    regionVolumePerClass: {},
    boxes,
    boxIds: cls.map((_, i) => i + 1),
    boxClasses: cls,
    lostInstances: [],
    allIous: [],
    classIous: {},
    intensity: [null],
    foregroundSamples: 0,
  };
}

/** The example task (§2): 10 cases of 256³ at spacing 1, one cube of edge 16..31 each (box = edge + 1). */
function toyFingerprint() {
  const cases = Array.from({ length: 10 }, (_, i) => {
    const e = 16 + ((i * 7) % 16);
    const t = 20 + i * 9;
    return fakeCase(`case_${i}`, [256, 256, 256], [1, 1, 1], [[t - 1, t - 1, t + e, t + e, t - 1, t + e]], [i % 2]);
  });
  return buildFingerprint({ modalities: { "0": "MRI" }, labels: { "0": "Square", "1": "SquareHole" } }, cases, cases.map(() => [new Float32Array(0)]));
}

function anisoFingerprint() {
  const cases = Array.from({ length: 5 }, (_, i) =>
    fakeCase(`c${i}`, [120, 400, 400], [2.5, 0.8, 0.8], [[10, 50 + i, 16, 80 + i, 40, 75 + 2 * i]], [0]),
  );
  return buildFingerprint({ modalities: { "0": "CT" }, labels: { "0": "lesion" } }, cases, cases.map(() => [new Float32Array(0)]));
}

const unlimited = { estimator: () => 0, budgetBytes: 1, anchorSearch: { budget: 600, runs: 1 } };

describe("rules", () => {
  test("target spacing: median, and the anisotropy rule", () => {
    expect(targetSpacing([[1, 1, 1], [1, 2, 1], [3, 1, 1]], [[9, 9, 9], [9, 9, 9], [9, 9, 9]])).toEqual([1, 1, 1]);
    // worst axis 5 > 3·1 and size 20·3 < 200: 10th percentile of axis 0 spacings
    const sp = [[5, 1, 1], [5, 1, 1], [4, 1, 1], [1.5, 1, 1], [5, 1, 1]];
    const sz = sp.map(() => [20, 200, 200]);
    expect(targetSpacing(sp, sz)[0]).toBeCloseTo(1.5 + 0.4 * 2.5, 12);
    // 10th percentile below the other spacings: raised to them + 1e-5
    const sp2 = [[0.5, 1, 1], [0.5, 1, 1], [5, 1, 1], [5, 1, 1], [5, 1, 1]];
    expect(targetSpacing(sp2, sp2.map(() => [20, 200, 200]))[0]).toBeCloseTo(1.00001, 12);
  });
  test("transpose puts the coarsest axis first", () => {
    expect(transposeForward([0.8, 2.5, 0.8])).toEqual([1, 0, 2]);
    expect(transposeForward([1, 1, 1])).toEqual([0, 1, 2]);
  });
  test("pad_shape and decoder levels", () => {
    expect(padShape([120, 400, 448], [16, 64, 64])).toEqual([128, 448, 448]);
    expect(decoderLevels(7)).toEqual([2, 3, 4, 5, 6]);
    expect(decoderLevels(5)).toEqual([1, 2, 3, 4]);
    expect(decoderLevels(3)).toEqual([1, 2]);
  });
  test("shrinking takes the largest patch/median ratio, the last axis on ties", () => {
    const topo = poolAndConv([1, 1, 1], [256, 256, 256]);
    // the bottleneck is at the 4-voxel minimum (256 / 2^6): half a divisor step
    expect(shrinkPatch(topo, [256, 256, 256])).toEqual([256, 256, 224]);
    expect(shrinkPatch(topo, [256, 200, 256])).toEqual([256, 224, 256]);
    expect(shrinkPatch(poolAndConv([1, 1, 1], [320, 320, 320]), [256, 256, 256])).toEqual([320, 320, 256]);
    // an unpooled axis at the 4-voxel floor shrinks by a whole voxel
    expect(shrinkPatch(poolAndConv([8, 1, 1], [4, 64, 64]), [2, 64, 64])).toEqual([3, 64, 64]);
  });
  test("class weights", () => {
    const w = classWeights({ "0": 3, "1": 1 }, 2);
    [1 / 3, (2 / 3) * 0.25, (2 / 3) * 0.75].forEach((x, i) => expect(w[i]!).toBeCloseTo(x, 15));
  });
});

describe("worked examples (§3.7, no memory shrinking)", () => {
  test("toy task: spacing 1, patch 256³, 6 pools of 2, kernels 3³, levels 2..6", () => {
    const [p] = planD3V001(toyFingerprint(), unlimited);
    expect(p!.target_spacing).toEqual([1, 1, 1]);
    expect(p!.transpose_forward).toEqual([0, 1, 2]);
    expect(initialPatch([1, 1, 1], [256, 256, 256])).toEqual([256, 256, 256]);
    expect(p!.patch_size).toEqual([256, 256, 256]);
    expect(p!.architecture.strides).toEqual(Array(6).fill([2, 2, 2]));
    expect(p!.architecture.conv_kernels).toEqual(Array(7).fill([3, 3, 3]));
    expect(p!.architecture.decoder_levels).toEqual([2, 3, 4, 5, 6]);
    expect(p!.normalization_schemes).toEqual({ "0": "nonCT" });
    expect(p!.use_mask_for_norm).toEqual({ "0": false });
    expect(p!.trigger_lr1).toBe(false);
    // anchors: multipliers 1, 2, 4, 8, 16 of the optimised base sizes
    expect(levelMultipliers(p!.architecture.strides, p!.architecture.decoder_levels)).toEqual([[1, 1, 1], [2, 2, 2], [4, 4, 4], [8, 8, 8], [16, 16, 16]]);
    const w = p!.anchors.width;
    expect(w.length).toBe(5);
    expect(w[3]).toEqual(w[0]!.map((x) => 8 * x));
    expect(p!.anchor_mean_iou).toBeGreaterThan(0.75);
    expect(() => parsePlan(JSON.parse(JSON.stringify(p)))).not.toThrow();
  });

  test("anisotropic task 2.5×0.8×0.8, median 120×400×400", () => {
    const [p] = planD3V001(anisoFingerprint(), unlimited);
    expect(p!.target_spacing).toEqual([2.5, 0.8, 0.8]);
    expect(initialPatch([2.5, 0.8, 0.8], [120, 400, 400])).toEqual([120, 400, 400]);
    expect(p!.patch_size).toEqual([128, 448, 448]);
    expect(p!.architecture.strides).toEqual([[1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]);
    expect(p!.architecture.conv_kernels).toEqual([[1, 3, 3], ...Array(6).fill([3, 3, 3])]);
    expect(poolAndConv([2.5, 0.8, 0.8], [120, 400, 400]).divisor).toEqual([16, 64, 64]);
    expect(p!.architecture.decoder_levels).toEqual([2, 3, 4, 5, 6]);
    // [quirk] multipliers relative to the first pool kernel
    expect(levelMultipliers(p!.architecture.strides, p!.architecture.decoder_levels)).toEqual([[2, 1, 1], [4, 2, 2], [8, 4, 4], [16, 8, 8], [16, 16, 16]]);
    expect(p!.normalization_schemes).toEqual({ "0": "CT" });
    expect(p!.do_dummy_2D_data_aug).toBe(true);
  });
});

describe("anchors", () => {
  test("issue #144 multipliers 1,2,4,4 when the last level pools axis 0 no more", () => {
    const strides = [[2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]];
    expect(levelMultipliers(strides, [1, 2, 3, 4]).map((m) => m[0])).toEqual([1, 2, 4, 4]);
    expect(anchorsPerLevel([3, 2, 5, 3, 2, 5, 2, 3, 5], levelMultipliers(strides, [1, 2, 3, 4])).width).toEqual([
      [3, 2, 5],
      [6, 4, 10],
      [12, 8, 20],
      [12, 8, 20],
    ]);
  });
  test("outlier filter is strict on the percentile band; objective is 1 for exact anchors", () => {
    const s = [[1, 1, 1], [5, 5, 5], [6, 6, 6], [100, 100, 100]];
    expect(filterBoxSizes(s)).toEqual([[5, 5, 5], [6, 6, 6]]);
    expect(meanBestIou([[4, 8, 16]], [4, 8, 16, 4, 8, 16, 4, 8, 16], [[1, 1, 1]])).toBe(1);
  });
});

describe("memory budget", () => {
  test("the default estimator shrinks the toy patch until one step fits 11 GB", () => {
    const fp = toyFingerprint();
    const p = planMode(fp, "3d", { anchorSearch: { budget: 200, runs: 1 } });
    expect(p.memory.estimated_bytes).toBeLessThan(NNDET_BUDGET_BYTES);
    // what our analytic account gives (nnDetection's measured plan depends on its GPU run)
    expect(p.patch_size).toEqual([160, 128, 128]);
    expect(p.architecture.decoder_levels).toEqual([2, 3, 4, 5]);
    expect(p.patch_size.reduce((a, b) => a * b)).toBeLessThan(256 ** 3);
    const big = planMode(fp, "3d", { budgetBytes: memoryBudget({ memory_gb: 40 }), anchorSearch: { budget: 200, runs: 1 } });
    expect(big.patch_size.reduce((a, b) => a * b)).toBeGreaterThan(p.patch_size.reduce((a, b) => a * b));
    const cpu = planMode(fp, "3d", { budgetBytes: memoryBudget({ budget: "cpu" }), anchorSearch: { budget: 200, runs: 1 } });
    expect(analyticTrainingBytes(cpu.architecture, cpu.patch_size, 4)).toBeLessThan(memoryBudget({ budget: "cpu" }));
  });

  test("with the engine's exact account, the chosen patch fits and one step larger would not", () => {
    const fp = toyFingerprint();
    const budget = memoryBudget({ memory_gb: 4 });
    const p = planMode(fp, "3d", { budgetBytes: budget, estimator: engineTrainingBytes, estimatorName: "engine", anchorSearch: { budget: 200, runs: 1 } });
    expect(p.memory.estimator).toBe("engine");
    expect(engineTrainingBytes(p.architecture, p.patch_size, 4)).toBe(p.memory.estimated_bytes);
    expect(p.memory.estimated_bytes).toBeLessThan(budget);
    expect(engineTrainingBytes(p.architecture, [p.patch_size[0]! + 32, p.patch_size[1]!, p.patch_size[2]!], 4)).toBeGreaterThan(budget * 0.9);
  });
});
