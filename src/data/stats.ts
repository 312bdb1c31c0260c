// Summary statistics as NumPy computes them for nnU-Net's intensity fingerprint: percentiles with linear
// interpolation (np.percentile default, including its two-sided lerp), median, mean, population std.
// Computed in f64 (NumPy works in the array's float32; differences are ~1e-7 relative).
import * as v from "valibot";

/** Sorted copy as Float64Array. */
export function sorted(x: ArrayLike<number>): Float64Array {
  const s = Float64Array.from(x as ArrayLike<number>);
  s.sort();
  return s;
}

/** np.percentile(x, q) on an already sorted array (linear method). */
export function percentileSorted(s: Float64Array, q: number): number {
  if (s.length === 0) return Number.NaN;
  const pos = (q / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  const t = pos - lo;
  const a = s[lo]!;
  const b = s[hi]!;
  // NOTE: NumPy's _lerp computes from the upper end when t >= 0.5 (exact at t = 1).
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

export function percentile(x: ArrayLike<number>, q: number): number {
  return percentileSorted(sorted(x), q);
}

export function median(x: ArrayLike<number>): number {
  return percentile(x, 50);
}

/** Per-column percentile of rows (np.percentile(rows, q, axis=0)). */
export function percentileAxis0(rows: number[][], q: number): number[] {
  const d = rows[0]?.length ?? 0;
  return Array.from({ length: d }, (_, j) => percentile(rows.map((r) => r[j]!), q));
}

export function mean(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s / x.length;
}

/** Population standard deviation (ddof 0). */
export function std(x: ArrayLike<number>): number {
  const m = mean(x);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i]! - m) ** 2;
  return Math.sqrt(s / x.length);
}

/** The intensity summary nnU-Net stores per modality (and per case as local_props). */
/** Schema of IntensityStats as stored in fingerprint.json and the plans. */
export const IntensityStatsSchema = v.object({
  median: v.number(),
  mean: v.number(),
  sd: v.number(),
  mn: v.number(),
  mx: v.number(),
  percentile_99_5: v.number(),
  percentile_00_5: v.number(),
});

export interface IntensityStats {
  median: number;
  mean: number;
  sd: number;
  mn: number;
  mx: number;
  percentile_99_5: number;
  percentile_00_5: number;
}

export function intensityStats(x: ArrayLike<number>): IntensityStats {
  if (x.length === 0) {
    const nan = Number.NaN;
    return { median: nan, mean: nan, sd: nan, mn: nan, mx: nan, percentile_99_5: nan, percentile_00_5: nan };
  }
  const s = sorted(x);
  return {
    median: percentileSorted(s, 50),
    mean: mean(s),
    sd: std(s),
    mn: s[0]!,
    mx: s[s.length - 1]!,
    percentile_99_5: percentileSorted(s, 99.5),
    percentile_00_5: percentileSorted(s, 0.5),
  };
}

/** Round half to even, as np.round. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
