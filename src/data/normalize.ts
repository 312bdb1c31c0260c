// Intensity normalisation per modality, after resampling (spec §3.6; nnU-Net 1.7.1 GenericPreprocessor):
//   CT    clip to the dataset foreground [p0.5, p99.5], then (x − fg mean) / fg std (no epsilon);
//   CT2   mask = p0.5 < x < p99.5 (before clipping), clip, then z-score with the case's masked mean/std;
//   nonCT z-score over mask (seg ≥ 0 if use-mask-for-norm, else every voxel), (x − m)/(s + 1e-8); 0 outside;
//   raw   no scaling; only the masking.
// For CT and CT2 with use-mask-for-norm, voxels with seg < 0 become 0 afterwards. Works in place on one
// channel (float32 [d0·d1·d2]); statistics in f64.
import type { IntensityStats } from "./stats";

export type NormScheme = "CT" | "CT2" | "nonCT" | "raw";

/** The scheme nnDetection picks from a modality name: exactly "CT" or "CT2", else non-CT. */
export function schemeForModality(name: string): NormScheme {
  return name === "CT" ? "CT" : name === "CT2" ? "CT2" : "nonCT";
}

/** use_mask_for_norm: never for names containing "CT"; else only when cropping removed over 25 % of the
 *  volume (median size reduction < 0.75), i.e. the image has a meaningful zero background (BraTS-like). */
export function useMaskForNorm(name: string, sizeReductions: number[]): boolean {
  if (name.includes("CT")) return false;
  const s = [...sizeReductions].sort((a, b) => a - b);
  const k = s.length;
  const med = k === 0 ? 1 : k % 2 ? s[(k - 1) / 2]! : (s[k / 2 - 1]! + s[k / 2]!) / 2;
  return med < 0.75;
}

function maskedMeanStd(x: Float32Array, keep: (i: number) => boolean): [number, number] {
  let n = 0;
  let s = 0;
  for (let i = 0; i < x.length; i++) if (keep(i)) (s += x[i]!), n++;
  const m = s / n;
  let v = 0;
  for (let i = 0; i < x.length; i++) if (keep(i)) v += (x[i]! - m) ** 2;
  return [m, Math.sqrt(v / n)];
}

/** Normalise one channel in place. `seg` is the (resampled) seg with −1 outside the non-zero region. */
export function normalizeChannel(
  x: Float32Array,
  seg: Int32Array,
  scheme: NormScheme,
  useMask: boolean,
  fg: IntensityStats | null | undefined,
): void {
  if (scheme === "CT" || scheme === "CT2") {
    if (!fg) throw new Error(`${scheme} normalisation needs the dataset's foreground intensity statistics`);
    const lo = fg.percentile_00_5;
    const hi = fg.percentile_99_5;
    let m = fg.mean;
    let s = fg.sd;
    if (scheme === "CT2") {
      const inside = new Uint8Array(x.length);
      for (let i = 0; i < x.length; i++) inside[i] = x[i]! > lo && x[i]! < hi ? 1 : 0;
      for (let i = 0; i < x.length; i++) x[i] = Math.min(hi, Math.max(lo, x[i]!));
      [m, s] = maskedMeanStd(x, (i) => inside[i] === 1);
      for (let i = 0; i < x.length; i++) x[i] = (x[i]! - m) / s;
    } else {
      for (let i = 0; i < x.length; i++) x[i] = (Math.min(hi, Math.max(lo, x[i]!)) - m) / s;
    }
    if (useMask) for (let i = 0; i < x.length; i++) if (seg[i]! < 0) x[i] = 0;
    return;
  }
  const keep = useMask ? (i: number) => seg[i]! >= 0 : () => true;
  if (scheme === "nonCT") {
    const [m, s] = maskedMeanStd(x, keep);
    const d = s + 1e-8;
    for (let i = 0; i < x.length; i++) x[i] = keep(i) ? (x[i]! - m) / d : 0;
  } else {
    for (let i = 0; i < x.length; i++) if (!keep(i)) x[i] = 0;
  }
}
