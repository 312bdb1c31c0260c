// Per-case preprocessing with a plan (spec §4.1; nnDetection `GenericPreprocessor`): transpose with
// transpose_forward, resample to the target spacing (images: cubic B-spline, native resample3d; seg:
// nearest, instance ids kept; values < −1 become 0), normalise each channel (normalize.ts), and the
// boxes of the instances present after resampling. Arrays in and out; no file IO (the stage does that,
// and prediction reuses this for test images).
import { labelBoxes, resample3d, resample3dLabels, type Shape3 } from "../native";
import type { Plan } from "../plan/types";
import { resampledShape, transpose } from "../plan/spacing";
import type { Box } from "./boxes";
import type { CroppedCase } from "./crop";
import { normalizeChannel } from "./normalize";

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Permute the axes of a [d0, d1, d2] volume: out axis i = in axis perm[i]. */
export function transpose3d<T extends Float32Array | Int32Array>(x: T, dims: Shape3, perm: readonly number[], out?: T): T {
  if (perm[0] === 0 && perm[1] === 1 && perm[2] === 2) return x;
  const od = perm.map((a) => dims[a]!) as Shape3;
  const st = [dims[1] * dims[2], dims[2], 1];
  const [s0, s1, s2] = perm.map((a) => st[a]!) as [number, number, number];
  const y = out ?? (new (x.constructor as new (n: number) => T)(x.length) as T);
  let o = 0;
  for (let a = 0; a < od[0]; a++) {
    for (let b = 0; b < od[1]; b++) {
      let s = a * s0 + b * s1;
      for (let c = 0; c < od[2]; c++, s += s2) y[o++] = x[s]!;
    }
  }
  return y;
}

export interface PreprocessedCase {
  /** float32 [C, ...shape] */
  data: Float32Array;
  /** int32 [...shape]: instance ids, −1 outside the non-zero region */
  seg: Int32Array;
  shape: Shape3;
  spacing: number[];
  /** Instances present after resampling: their boxes (box convention of boxes.ts), ids and classes. */
  boxes: { boxes: Box[]; instances: number[]; labels: number[] };
  /** Instance ids of the json that resampling lost (small objects). */
  lost: number[];
}

/** Preprocess one cropped case (array order, spacing in array order) with `plan`. */
export function preprocessCase(c: CroppedCase, spacing: readonly number[], instances: Record<string, number>, plan: Plan): PreprocessedCase {
  const perm = plan.transpose_forward;
  const shapeT = transpose(c.shape, perm) as Shape3;
  const spacingT = transpose(spacing, perm);
  const target = plan.target_spacing_transposed;
  const outShape = resampledShape(shapeT, spacingT, target) as Shape3;
  const same = outShape.every((d, i) => d === shapeT[i]);
  const n = prod(c.shape);
  const m = prod(outShape);
  const data = new Float32Array(c.channels * m);
  const tmp = same ? null : new Float32Array(n);
  for (let ch = 0; ch < c.channels; ch++) {
    const src = c.data.subarray(ch * n, (ch + 1) * n);
    const dst = data.subarray(ch * m, (ch + 1) * m);
    if (same) {
      const t = transpose3d(src, c.shape, perm);
      dst.set(t);
    } else {
      const t = perm[0] === 0 && perm[1] === 1 && perm[2] === 2 ? src : transpose3d(src, c.shape, perm, tmp!);
      resample3d(t, shapeT, outShape, 3, { out: dst });
    }
  }
  const segT = transpose3d(c.seg, c.shape, perm);
  // NOTE: at the target spacing with no transpose the result's seg is c.seg itself (not copied).
  const seg = same ? segT : resample3dLabels(segT, shapeT, outShape);
  for (let i = 0; i < m; i++) if (seg[i]! < -1) seg[i] = 0;
  const mods = Object.keys(plan.modalities);
  mods.forEach((mod, ch) => {
    normalizeChannel(data.subarray(ch * m, (ch + 1) * m), seg, plan.normalization_schemes[mod]!, plan.use_mask_for_norm[mod]!, plan.intensity_properties[mod]);
  });
  const { ids, boxes } = labelBoxes(seg, outShape);
  const known = ids.filter((id) => instances[String(id)] !== undefined);
  const present = new Set(ids);
  return {
    data,
    seg,
    shape: outShape,
    spacing: target,
    boxes: {
      boxes: known.map((id) => boxes[ids.indexOf(id)]!),
      instances: known,
      labels: known.map((id) => instances[String(id)]!),
    },
    lost: Object.keys(instances)
      .map(Number)
      .filter((id) => !present.has(id)),
  };
}
