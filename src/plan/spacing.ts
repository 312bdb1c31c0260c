// Target spacing and axis order (spec §3.4, §3.5; nnDetection `_target_spacing_base`, as nnU-Net's
// 3d_fullres). Spacings and sizes are per case, in array order.
import { median, percentile, percentileAxis0, roundHalfEven } from "../data/stats";

export const ANISOTROPY_THRESHOLD = 3;
export const TARGET_SPACING_PERCENTILE = 50;

/** Median spacing per axis — except for strongly anisotropic data (the worst axis' spacing is over 3×
 *  the finest and its median size is under a third of the others), where the worst axis takes the 10th
 *  percentile of its spacings instead: resampling to the median would inflate thin-slice data with
 *  interpolated slices. NOTE: the spec writes min(other spacings) where nnU-Net uses max; equal for the
 *  usual in-plane-isotropic data. The 1e-5 keeps the worst axis strictly coarser than the others. */
export function targetSpacing(spacings: number[][], sizes: number[][]): number[] {
  const target = percentileAxis0(spacings, TARGET_SPACING_PERCENTILE);
  const tsize = percentileAxis0(sizes, TARGET_SPACING_PERCENTILE);
  const w = argmax(target);
  const others = [0, 1, 2].filter((i) => i !== w);
  const minOtherSpacing = Math.min(...others.map((i) => target[i]!));
  const minOtherSize = Math.min(...others.map((i) => tsize[i]!));
  if (target[w]! > ANISOTROPY_THRESHOLD * minOtherSpacing && tsize[w]! * ANISOTROPY_THRESHOLD < minOtherSize) {
    let t = percentile(
      spacings.map((s) => s[w]!),
      10,
    );
    if (t < minOtherSpacing) t = Math.max(minOtherSpacing, t) + 1e-5;
    target[w] = t;
  }
  return target;
}

/** First index of the maximum, as np.argmax. */
export function argmax(x: readonly number[]): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[b]!) b = i;
  return b;
}

/** The coarsest axis first, the others in order: anisotropic data then has its slice axis as axis 0,
 *  which the topology rules and the 2D-augmentation switch assume. */
export function transposeForward(target: readonly number[]): number[] {
  const w = argmax(target);
  return [w, ...[0, 1, 2].filter((i) => i !== w)];
}

export function inversePermutation(p: readonly number[]): number[] {
  const inv = [0, 0, 0];
  p.forEach((a, i) => (inv[a] = i));
  return inv;
}

export function transpose<T>(x: readonly T[], perm: readonly number[]): T[] {
  return perm.map((i) => x[i]!);
}

/** Median over cases of each case's shape after resampling to `target` (float), array order. */
export function medianShape(spacings: number[][], sizes: number[][], target: readonly number[]): number[] {
  const shapes = sizes.map((s, c) => s.map((d, i) => (spacings[c]![i]! / target[i]!) * d));
  return [0, 1, 2].map((i) => median(shapes.map((s) => s[i]!)));
}

/** Shape of a case after resampling: round(spacing / target × size), NumPy rounding. */
export function resampledShape(size: readonly number[], spacing: readonly number[], target: readonly number[]): number[] {
  return size.map((d, i) => roundHalfEven((spacing[i]! / target[i]!) * d));
}
