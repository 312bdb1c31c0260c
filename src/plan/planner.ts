// Planner D3V001 (spec §3.3–§3.11; nnDetection `planning/experiment/v001.py` with architecture planner
// BoxC002): from the dataset fingerprint to the 3d plan (and the low-resolution 3dlr1 plan when the
// largest objects do not fit the 3d patch). Each rule is a small function in spacing.ts, topology.ts,
// anchors.ts; the fit test is a MemoryEstimator against a byte budget.
import { boxSize } from "../data/boxes";
import type { Fingerprint } from "../data/fingerprint";
import { schemeForModality, useMaskForNorm } from "../data/normalize";
import { percentile } from "../data/stats";
import { filterBoxSizes, levelMultipliers, optimiseAnchors, scaledBoxSizes, anchorsPerLevel, type AnchorSearch } from "./anchors";
import { analyticTrainingBytes, NNDET_BUDGET_BYTES } from "./memory";
import { ANISOTROPY_THRESHOLD, inversePermutation, medianShape, TARGET_SPACING_PERCENTILE, targetSpacing, transpose, transposeForward } from "./spacing";
import { decoderLevels, initialPatch, poolAndConv, shrinkPatch } from "./topology";
import { type Architecture, type MemoryEstimator, type Plan, PLAN_VERSION } from "./types";

export const PLANNER_ID = "D3V001";
export const BATCH_SIZE = 4;

export interface PlannerOptions {
  estimator?: MemoryEstimator;
  estimatorName?: string;
  budgetBytes?: number;
  batchSize?: number;
  anchorSearch?: AnchorSearch;
  /** Path of the fingerprint the plan was made from (recorded in the plan). */
  fingerprintPath?: string;
}

/** Class weights (unused by the loss, kept for parity): bg = 1/(K+1); class i: (1 − bg)(1 − n_i / Σn). */
export function classWeights(numInstances: Record<string, number>, numClasses: number): number[] {
  const counts = Array.from({ length: numClasses }, (_, i) => numInstances[i] ?? 0);
  const total = counts.reduce((a, b) => a + b, 0);
  const bg = 1 / (numClasses + 1);
  return [bg, ...counts.map((n) => (1 - bg) * (1 - (total ? n / total : 0)))];
}

/** Proxy for the most objects one patch can hold (the memory test's target count): for every box, the
 *  number of box centres within ±patch/2 of its centre, at target spacing; the maximum over cases. */
export function maxInstancesPerPatch(fp: Fingerprint, perm: number[], targetT: number[], patch: number[]): number {
  let best = 0;
  for (const c of fp.cases) {
    const sp = transpose(c.spacing, perm);
    const centres = c.boxes.map((b) => {
      const ctr = [(b[0]! + b[2]!) / 2, (b[1]! + b[3]!) / 2, (b[4]! + b[5]!) / 2];
      return perm.map((ax, i) => (ctr[ax]! * sp[i]!) / targetT[i]!);
    });
    for (const a of centres) {
      const n = centres.filter((b) => b.every((x, i) => Math.abs(x - a[i]!) <= patch[i]! / 2)).length;
      best = Math.max(best, n);
    }
  }
  return best;
}

/** Plan one mode ("3d", or "3dlrK": target spacing × 2^K). */
export function planMode(fp: Fingerprint, mode: string, opts: PlannerOptions = {}): Plan {
  const estimator = opts.estimator ?? analyticTrainingBytes;
  const budget = opts.budgetBytes ?? NNDET_BUDGET_BYTES;
  const batch = opts.batchSize ?? BATCH_SIZE;
  const base = targetSpacing(fp.allSpacings, fp.allSizes);
  const lr = /^3dlr(\d+)$/.exec(mode);
  if (mode !== "3d" && !lr) throw new Error(`unknown plan mode ${mode}`);
  const target = base.map((t) => t * 2 ** (lr ? Number(lr[1]) : 0));
  const perm = transposeForward(base);
  const targetT = transpose(target, perm);
  const medianT = transpose(medianShape(fp.allSpacings, fp.allSizes, target), perm);
  const numClasses = Object.keys(fp.labels).length;
  const mods = Object.keys(fp.modalities);

  let patch = initialPatch(targetT, medianT);
  let arch: Architecture;
  let estimate: number;
  for (;;) {
    const topo = poolAndConv(targetT, patch);
    arch = {
      arch_name: "RetinaUNetV001",
      start_channels: 32,
      max_channels: 320,
      fpn_channels: 128,
      head_channels: 128,
      classifier_classes: numClasses,
      seg_classes: numClasses,
      in_channels: mods.length,
      dim: 3,
      class_weight: classWeights(fp.numInstances, numClasses),
      conv_kernels: topo.convKernels,
      strides: topo.strides,
      decoder_levels: decoderLevels(topo.convKernels.length),
    };
    patch = topo.patch;
    estimate = estimator(arch, patch, batch);
    if (estimate < budget) break;
    const next = shrinkPatch(topo, medianT);
    if (next.some((x) => x < 1)) throw new Error(`no patch fits the memory budget of ${(budget / 2 ** 30).toFixed(2)} GiB`);
    patch = next;
  }

  const gt = scaledBoxSizes(fp.cases, perm, targetT);
  const mult = levelMultipliers(arch.strides, arch.decoder_levels);
  const { base: anchorBase, meanIou } = gt.length
    ? optimiseAnchors(filterBoxSizes(gt), mult, opts.anchorSearch)
    : { base: [4, 8, 16, 4, 8, 16, 4, 8, 16], meanIou: 0 };
  const levels = anchorsPerLevel(anchorBase, mult);

  const plan: Plan = {
    version: PLAN_VERSION,
    planner_id: PLANNER_ID,
    mode,
    data_identifier: `${PLANNER_ID}_${mode}`,
    network_dim: 3,
    dim: 3,
    target_spacing: target,
    target_spacing_transposed: targetT,
    transpose_forward: perm,
    transpose_backward: inversePermutation(perm),
    median_shape_transposed: medianT,
    normalization_schemes: Object.fromEntries(mods.map((m) => [m, schemeForModality(fp.modalities[m]!)])),
    use_mask_for_norm: Object.fromEntries(mods.map((m) => [m, useMaskForNorm(fp.modalities[m]!, fp.sizeReductions)])),
    intensity_properties: fp.intensityProperties,
    anisotropy_threshold: ANISOTROPY_THRESHOLD,
    resample_anisotropy_threshold: ANISOTROPY_THRESHOLD,
    target_spacing_percentile: TARGET_SPACING_PERCENTILE,
    num_modalities: mods.length,
    modalities: fp.modalities,
    all_classes: fp.allClasses,
    num_classes: numClasses,
    patch_size: patch,
    batch_size: batch,
    do_dummy_2D_data_aug: Math.max(...patch) / Math.min(...patch) > ANISOTROPY_THRESHOLD,
    architecture: arch,
    anchors: { ...levels, stride: 1 },
    anchor_mean_iou: meanIou,
    memory: { estimator: opts.estimatorName ?? "nndet", budget_bytes: budget, estimated_bytes: estimate },
    num_instances_per_patch: maxInstancesPerPatch(fp, perm, targetT, patch),
    fingerprint: opts.fingerprintPath ?? "properties/fingerprint.json",
  };
  return plan;
}

/** [quirk] The low-resolution plan is triggered when the 99.5th percentile of GT box sizes per axis — in
 *  original voxels, transposed — exceeds the 3d patch along any axis (nnDetection compares original-
 *  spacing sizes against a target-spacing patch). */
export function triggerLr1(fp: Fingerprint, plan: Plan): boolean {
  const sizes = fp.cases.flatMap((c) => c.boxes.map((b) => transpose(boxSize(b), plan.transpose_forward)));
  if (sizes.length === 0) return false;
  return [0, 1, 2].some((i) => percentile(sizes.map((s) => s[i]!), 99.5) > plan.patch_size[i]!);
}

/** All plans of D3V001: the 3d plan, and the 3dlr1 plan when triggered. */
export function planD3V001(fp: Fingerprint, opts: PlannerOptions = {}): Plan[] {
  const p3d = planMode(fp, "3d", opts);
  p3d.trigger_lr1 = triggerLr1(fp, p3d);
  return p3d.trigger_lr1 ? [p3d, planMode(fp, "3dlr1", opts)] : [p3d];
}
