// Patch size and network topology (spec §3.7; nnDetection BoxC002 `_get_initial_patch_size`,
// `plan_pool_and_conv_pool_late` -> nnU-Net 1.7.1 `get_pool_and_conv_props`, `_plan_architecture`).
// All shapes here are in transposed axis order.
import { roundHalfEven } from "../data/stats";

export const MIN_FEATURE_MAP_SIZE = 4;
export const MAX_NUM_POOL = 999;
export const NUM_DECODER_LEVELS = 4;
export const MIN_DECODER_LEVEL = 2;

/** Initial patch: a box of about 512 voxels along the finest axis, shaped by the spacing so it spans a
 *  similar physical extent on every axis, then limited to the median shape (no point in a patch larger
 *  than the typical image): the coarsest axis by its own median size, the others by the smallest of the
 *  other axes' median sizes (keeping them equal). */
export function initialPatch(spacing: readonly number[], medianShape: readonly number[]): number[] {
  const inv = spacing.map((s) => 1 / s);
  const m = inv.reduce((a, b) => a + b, 0) / inv.length;
  const v = inv.map((x) => x / m);
  const vmin = Math.min(...v);
  const p = v.map((x) => roundHalfEven((x / vmin) * 512));
  const low = spacing.indexOf(Math.max(...spacing));
  const isoMin = Math.min(...medianShape.filter((_, i) => i !== low));
  return p.map((x, i) => roundHalfEven(i === low ? Math.min(x, medianShape[i]!) : Math.min(x, isoMin)));
}

export interface Topology {
  /** Pooling kernel per downsampling stage (2 on pooled axes, else 1). */
  strides: number[][];
  /** Conv kernel per resolution stage, plus the bottleneck's [3,3,3]. */
  convKernels: number[][];
  numPoolPerAxis: number[];
  /** 2^pools per axis: the patch must be a multiple. */
  divisor: number[];
  /** The patch padded up to a multiple of `divisor`. */
  patch: number[];
}

/** Pool an axis only while its spacing is within 2× of the finest (so features become isotropic before
 *  anisotropic axes are pooled) and its feature map stays ≥ 2·4 voxels; use 3-wide convs only along the
 *  largest group of axes whose spacings are within 2× of each other (1-wide across thick slices).
 *  NOTE: sizes halve with floor here: the spec's worked example (2.5×0.8×0.8, 120×400×400 →
 *  pools [1,2,2],[2,2,2]×4,[1,2,2], divisors 16,64,64) needs it; nnU-Net's np.ceil would pool axis 0
 *  five times. */
export function poolAndConv(spacing: readonly number[], patch: readonly number[]): Topology {
  const dim = spacing.length;
  const cur = [...spacing];
  const size = [...patch];
  const strides: number[][] = [];
  const convKernels: number[][] = [];
  const numPool = new Array<number>(dim).fill(0);
  for (;;) {
    const minSp = Math.min(...cur);
    let valid = [...Array(dim).keys()].filter((i) => cur[i]! / minSp < 2);
    let axes: number[] = [];
    for (let a = 0; a < dim; a++) {
      const partners = [...Array(dim).keys()].filter((i) => cur[i]! / cur[a]! < 2 && cur[a]! / cur[i]! < 2);
      if (partners.length > axes.length) axes = partners;
    }
    const conv = [...Array(dim).keys()].map((i) => (axes.includes(i) ? 3 : 1));
    valid = valid.filter((i) => size[i]! >= 2 * MIN_FEATURE_MAP_SIZE && numPool[i]! < MAX_NUM_POOL);
    if (valid.length === 0) break;
    const pool = new Array<number>(dim).fill(1);
    for (const i of valid) {
      pool[i] = 2;
      numPool[i]!++;
      cur[i]! *= 2;
      size[i] = Math.floor(size[i]! / 2);
    }
    strides.push(pool);
    convKernels.push(conv);
  }
  convKernels.push(new Array<number>(dim).fill(3));
  const divisor = numPool.map((n) => 2 ** n);
  return { strides, convKernels, numPoolPerAxis: numPool, divisor, patch: padShape(patch, divisor) };
}

/** Round each size up to a multiple of its divisor (nnU-Net `pad_shape`). */
export function padShape(patch: readonly number[], divisor: readonly number[]): number[] {
  return patch.map((p, i) => {
    const d = divisor[i]!;
    return p % d === 0 ? p : p + d - (p % d);
  });
}

/** Detection levels: the 4 deepest resolutions but starting no deeper than P2, so small objects keep a
 *  high-resolution level; with ≥ 6 resolutions the head sees P2 … deepest. */
export function decoderLevels(numResolutions: number): number[] {
  const start = Math.min(Math.max(1, numResolutions - NUM_DECODER_LEVELS), MIN_DECODER_LEVEL);
  return Array.from({ length: numResolutions - start }, (_, i) => start + i);
}

/** One shrinking step when a plan does not fit: reduce the axis with the largest patch / median-shape
 *  ratio (ties: the last such axis, as nnDetection's argsort(...)[::-1][0]) by one divisor step, or half
 *  a step once its bottleneck feature map is at the 4-voxel minimum. */
export function shrinkPatch(topo: Topology, medianShape: readonly number[]): number[] {
  const p = [...topo.patch];
  const ratio = p.map((x, i) => x / medianShape[i]!);
  let axis = 0;
  for (let i = 1; i < ratio.length; i++) if (ratio[i]! >= ratio[axis]!) axis = i;
  const totalStride = topo.divisor;
  const bottleneck = p[axis]! / totalStride[axis]!;
  // (an axis that is never pooled has divisor 1: it shrinks by 1, never by half a voxel)
  p[axis] = p[axis]! - (bottleneck > MIN_FEATURE_MAP_SIZE ? topo.divisor[axis]! : Math.max(1, topo.divisor[axis]! / 2));
  return p;
}
