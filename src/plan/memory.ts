// The planner's fit test: bytes one training step of RetinaUNetV001 needs at (patch, batch), compared
// with a memory budget. nnDetection measures this on a GPU (spec §3.8: AMP forward + backward + Adam
// step, 10 iterations, reserved memory minus the empty-network baseline, plus a 768 MiB safety block,
// against an 11 GB "RTX2080TI" budget). Without a GPU we count it instead: `analyticTrainingBytes` is
// the default estimator (a buffer account of the same step: fp16 activations kept for backward, the
// fp32 tensors AMP keeps in fp32, the largest transient gradient pair, fp32 grads + Adam moments + fp16
// weight copies, and the 768 MiB block) — it sizes plans like nnDetection's. `engineTrainingBytes` is
// our own engine's exact buffer account (src/model/memory.ts: fp32 parameters, gradients, momentum and
// the activation arena): the estimator for budgets that our trainer itself must fit (memory_gb, cpu).
import type { ArchPlan, Vec3 } from "../model/arch";
import { memoryAccount } from "../model/memory";
import type { Architecture, MemoryEstimator } from "./types";

/** nnDetection's budget: 11 523 260 416 B − 11 MiB ("RTX2080TI"), whatever GPU is present. */
export const NNDET_BUDGET_BYTES = 11_523_260_416 - 11 * 2 ** 20;
/** A budget for small CPU runs (a training step in ~1.5 GiB of RAM). */
export const CPU_BUDGET_BYTES = 1.5 * 2 ** 30;
/** nnDetection's safety block, allocated inside the measured region. */
export const OFFSET_BYTES = 768 * 2 ** 20;
/** Anchors per position (3 × 3 × 3). */
const ANCHORS = 27;

/** Memory budget from planner overrides: `memory_gb` (GiB) or a preset name ("nndet" | "cpu"). */
export function memoryBudget(opts: { memory_gb?: number; budget?: string }): number {
  if (opts.memory_gb !== undefined) {
    if (!(opts.memory_gb > 0)) throw new Error(`planner.memory_gb must be positive, got ${opts.memory_gb}`);
    return opts.memory_gb * 2 ** 30;
  }
  const b = opts.budget ?? "nndet";
  if (b === "nndet" || b === "gpu") return NNDET_BUDGET_BYTES;
  if (b === "cpu") return CPU_BUDGET_BYTES;
  throw new Error(`planner.budget must be 'nndet' or 'cpu', got '${b}'`);
}

const prod = (x: readonly number[]) => x.reduce((a, b) => a * b, 1);

/** Voxels per resolution stage for `patch` and the architecture's strides. */
export function stageShapes(arch: Architecture, patch: number[]): number[][] {
  const shapes = [patch];
  for (const s of arch.strides) shapes.push(shapes[shapes.length - 1]!.map((x, i) => Math.floor(x / s[i]!)));
  return shapes;
}

/** FPN output channels per level: fpn_channels from the first detection level on, halving below (≥ 8). */
export function decoderChannels(arch: Architecture): number[] {
  const n = arch.conv_kernels.length;
  const first = Math.min(...arch.decoder_levels);
  const out = new Array<number>(n).fill(arch.fpn_channels);
  for (let l = first - 1; l >= 0; l--) out[l] = Math.max(8, Math.floor(out[l + 1]! / 2));
  return out;
}

/** Parameter count of RetinaUNetV001 (convs with their biases, norms' affine parameters). */
export function parameterCount(arch: Architecture): number {
  const n = arch.conv_kernels.length;
  const enc = Array.from({ length: n }, (_, s) => Math.min(arch.start_channels * 2 ** s, arch.max_channels));
  const dec = decoderChannels(arch);
  let p = 0;
  for (let s = 0; s < n; s++) {
    const k = prod(arch.conv_kernels[s]!);
    const cin = s === 0 ? arch.in_channels : enc[s - 1]!;
    p += cin * enc[s]! * k + enc[s]! * enc[s]! * k + 4 * enc[s]!;
    p += enc[s]! * dec[s]! + dec[s]! + dec[s]! * dec[s]! * k + dec[s]!;
    if (s < n - 1) p += dec[s + 1]! * dec[s]! * prod(arch.strides[s]!) + dec[s]!;
  }
  const hc = arch.head_channels;
  const head = (out: number) => arch.fpn_channels * hc * 27 + 3 * hc + hc * out * 27 + out;
  p += head(ANCHORS * arch.classifier_classes) + head(ANCHORS * 6) + dec[0]! * (arch.seg_classes + 1) + arch.seg_classes + 1;
  return p;
}

/** Default estimator: bytes of one AMP training step with Adam (see the file header). */
export const analyticTrainingBytes: MemoryEstimator = (arch, patch, batch) => {
  const shapes = stageShapes(arch, patch);
  const vox = shapes.map(prod);
  const n = arch.conv_kernels.length;
  const enc = Array.from({ length: n }, (_, s) => Math.min(arch.start_channels * 2 ** s, arch.max_channels));
  const dec = decoderChannels(arch);
  const tensors: number[] = []; // bytes per image of each saved activation
  tensors.push(4 * arch.in_channels * vox[0]!, 2 * arch.in_channels * vox[0]!); // input, its fp16 cast
  for (let s = 0; s < n; s++) {
    // two conv blocks: conv output (kept for the norm's backward) and the in-place norm+ReLU output
    for (let k = 0; k < 4; k++) tensors.push(2 * enc[s]! * vox[s]!);
    // lateral, upsampled + sum (not at the deepest level), output conv
    tensors.push(2 * dec[s]! * vox[s]!, 2 * dec[s]! * vox[s]!);
    if (s < n - 1) tensors.push(2 * dec[s]! * vox[s]!, 2 * dec[s]! * vox[s]!);
  }
  const K = arch.classifier_classes;
  for (const l of arch.decoder_levels) {
    const v = vox[l]!;
    for (const out of [ANCHORS * K, ANCHORS * 6]) {
      // conv (fp16), GroupNorm+ReLU (fp32 under autocast), prediction (fp16) and its fp32 copy for the loss
      tensors.push(2 * arch.head_channels * v, 4 * arch.head_channels * v, 2 * out * v, 4 * out * v);
    }
    tensors.push(4 * ANCHORS * 6 * v); // anchors of this level, per image
  }
  // segmentation head: logits (fp16), softmax and log-softmax (fp32)
  tensors.push(2 * (arch.seg_classes + 1) * vox[0]!, 8 * (arch.seg_classes + 1) * vox[0]!);
  const saved = tensors.reduce((a, b) => a + b, 0) * batch;
  const transient = 2 * Math.max(...tensors) * batch; // gradient in + gradient out of the largest layer
  const params = parameterCount(arch) * (4 + 8 + 2); // grads, Adam moments, fp16 weight copies
  return saved + transient + params + OFFSET_BYTES;
};

/** Exact bytes of one training step of our engine (src/model/memory.ts) for this plan, patch and batch. */
export const engineTrainingBytes: MemoryEstimator = (arch, patch, batch) => {
  const plan: ArchPlan = {
    in_channels: arch.in_channels,
    start_channels: arch.start_channels,
    max_channels: arch.max_channels,
    fpn_channels: arch.fpn_channels,
    head_channels: arch.head_channels,
    classifier_classes: arch.classifier_classes,
    conv_kernels: arch.conv_kernels as Vec3[],
    strides: arch.strides as Vec3[],
    decoder_levels: arch.decoder_levels,
  };
  return memoryAccount(plan, patch as Vec3, batch, "train").total;
};

export type EstimatorName = "nndet" | "engine";

/** The estimator for a budget: nnDetection's own budget is sized as nnDetection measures it (PyTorch AMP
 *  model); any other budget is one our engine must fit, so its exact account decides. `name` overrides. */
export function estimatorFor(opts: { memory_gb?: number; budget?: string; estimator?: string }): { name: EstimatorName; fn: MemoryEstimator } {
  const name = opts.estimator ?? (opts.memory_gb === undefined && (opts.budget ?? "nndet") !== "cpu" ? "nndet" : "engine");
  if (name === "nndet") return { name, fn: analyticTrainingBytes };
  if (name === "engine") return { name, fn: engineTrainingBytes };
  throw new Error(`planner.estimator must be 'nndet' or 'engine', got '${name}'`);
}
