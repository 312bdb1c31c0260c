// Per-case preprocessing through the stage API on in-memory arrays (no NIfTI): transpose, resampling to
// the plan's target spacing, normalisation, boxes after resampling; and the prep CLI's argument rules.
import { describe, expect, test } from "bun:test";
import { plannerOptions, splitPrepArgs } from "../../src/cli/prep";
import { instancesToBoxes } from "../../src/data/boxes";
import { cropToNonzero } from "../../src/data/crop";
import { analyzeCase, buildFingerprint, foregroundSamples } from "../../src/data/fingerprint";
import { preprocessCase, transpose3d } from "../../src/data/preprocess";
import { resample3d } from "../../src/native";
import { NNDET_BUDGET_BYTES } from "../../src/plan/memory";
import { planMode } from "../../src/plan/planner";

describe("transpose3d", () => {
  test("out axis i is in axis perm[i]", () => {
    const x = Float32Array.from({ length: 24 }, (_, i) => i); // [2,3,4]
    const y = transpose3d(x, [2, 3, 4], [1, 0, 2]); // [3,2,4]
    for (let a = 0; a < 3; a++) for (let b = 0; b < 2; b++) for (let c = 0; c < 4; c++) expect(y[(a * 2 + b) * 4 + c]).toBe(x[(b * 3 + a) * 4 + c]!);
    expect(transpose3d(x, [2, 3, 4], [0, 1, 2])).toBe(x);
  });
});

describe("preprocessCase", () => {
  test("anisotropic case: coarse axis first, resampled to the target, z-scored, boxes of the resampled seg", () => {
    // array [10, 6, 12], the coarse axis is 1; two cases at different spacings make a target between them
    const dims: [number, number, number] = [10, 6, 12];
    const n = 720;
    const data = Float32Array.from({ length: n }, (_, i) => 100 + ((i * 37) % 11) + (i % 12));
    const seg = new Int32Array(n);
    for (let a = 3; a < 7; a++) for (let b = 2; b < 4; b++) for (let c = 4; c < 9; c++) seg[(a * 6 + b) * 12 + c] = 1;
    const c0 = cropToNonzero(data, 1, dims, seg);
    const f = (sp: number[], name: string) => analyzeCase({ case: name, originalSize: dims, spacing: sp, instances: { "1": 0 } }, c0, foregroundSamples(c0), 1);
    const fp = buildFingerprint({ modalities: { "0": "MR" }, labels: { "0": "x" } }, [f([1, 4, 1], "a"), f([1, 4, 1], "b"), f([1.5, 5, 1.2], "c")], [[new Float32Array(1)], [new Float32Array(1)], [new Float32Array(1)]]);
    const plan = planMode(fp, "3d", { budgetBytes: NNDET_BUDGET_BYTES, estimator: () => 0, anchorSearch: { budget: 100, runs: 1 } });
    expect(plan.transpose_forward).toEqual([1, 0, 2]);
    expect(plan.target_spacing).toEqual([1, 4, 1]);
    // case c: spacing [1.5, 5, 1.2] -> transposed [5, 1.5, 1.2] over [6, 10, 12] -> round([7.5, 15, 14.4])
    const r = preprocessCase(c0, [1.5, 5, 1.2], { "1": 0 }, plan);
    expect(r.shape).toEqual([8, 15, 14]);
    const expected = resample3d(transpose3d(c0.data, dims, [1, 0, 2]), [6, 10, 12], [8, 15, 14], 3);
    let m = 0;
    for (const v of expected) m += v;
    m /= expected.length;
    let sd = 0;
    for (const v of expected) sd += (v - m) ** 2;
    sd = Math.sqrt(sd / expected.length);
    for (let i = 0; i < expected.length; i++) expect(Math.abs(r.data[i]! - (expected[i]! - m) / (sd + 1e-8))).toBeLessThan(1e-4);
    expect(r.boxes.instances).toEqual([1]);
    expect(r.boxes.boxes[0]).toEqual(instancesToBoxes(r.seg, r.shape).boxes[0]!);
    expect(r.lost).toEqual([]);
    // case a is at the target spacing: only transposed
    const same = preprocessCase(c0, [1, 4, 1], { "1": 0 }, plan);
    expect(same.shape).toEqual([6, 10, 12]);
    expect(same.seg).toEqual(transpose3d(c0.seg, dims, [1, 0, 2]));
  });
});

describe("prep arguments", () => {
  test("tasks and -o overrides as nnDetection writes them", () => {
    expect(splitPrepArgs(["000", "001", "-o", "planner.memory_gb=40", "planner.batch_size=2", "--np", "3", "--full_check"])).toEqual({
      tasks: ["000", "001"],
      overrides: { "planner.memory_gb": "40", "planner.batch_size": "2" },
    });
    expect(plannerOptions({ "planner.memory_gb": "40" }).budgetBytes).toBe(40 * 2 ** 30);
    expect(plannerOptions({}).budgetBytes).toBe(NNDET_BUDGET_BYTES);
    expect(plannerOptions({}).estimatorName).toBe("nndet");
    expect(plannerOptions({ "planner.budget": "cpu" }).estimatorName).toBe("engine");
    expect(plannerOptions({ "planner.memory_gb": "40", "planner.estimator": "nndet" }).estimatorName).toBe("nndet");
    expect(() => plannerOptions({ "planner.estimator": "gpu" })).toThrow("planner.estimator must be");
    expect(() => plannerOptions({ "planner.nope": "1" })).toThrow("unknown override 'planner.nope'");
    expect(() => plannerOptions({ "planner.memory_gb": "-1" })).toThrow("must be a positive number");
    expect(() => splitPrepArgs(["-o", "novalue"])).toThrow("must be key=value");
  });
});
