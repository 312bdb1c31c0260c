// Anchor levels of a plan (nnDetection AnchorGenerator3DS, spec §3.9 / §5.3): the plan's per-level
// (width, height, depth) size triples plus the network's input and feature-map sizes give the levels that
// `generateAnchors` and `atssMatch` take. Stride per axis = floor(input / fmap), as nnDetection computes it.
import { anchorsInLevel, anchorsPerLocation, type AnchorLevel } from "../native/ops/detect";

/** The `anchors` entry of a plan: one list of sizes per level (a flat list is one level). */
export interface PlanAnchors {
  width: readonly (number | readonly number[])[];
  height: readonly (number | readonly number[])[];
  depth: readonly (number | readonly number[])[];
}

function perLevel(v: readonly (number | readonly number[])[], n: number, what: string): number[][] {
  const levels = v.every((x) => typeof x === "number") ? [v as number[]] : (v as (readonly number[])[]).map((x) => [...x]);
  if (levels.length === 1 && n > 1) return Array.from({ length: n }, () => levels[0]!);
  if (levels.length !== n) throw new RangeError(`anchor ${what} has ${levels.length} levels, expected ${n}`);
  return levels;
}

/** Levels for an input of `imageSize` with feature maps `fmapSizes` (one [3] per level). */
export function anchorLevels(
  plan: PlanAnchors,
  imageSize: readonly [number, number, number],
  fmapSizes: readonly (readonly [number, number, number])[],
): AnchorLevel[] {
  const n = fmapSizes.length;
  const [w, h, d] = [perLevel(plan.width, n, "width"), perLevel(plan.height, n, "height"), perLevel(plan.depth, n, "depth")];
  return fmapSizes.map((f, l) => ({
    widths: w[l]!,
    heights: h[l]!,
    depths: d[l]!,
    fmapSize: f,
    stride: [0, 1, 2].map((a) => Math.floor(imageSize[a]! / f[a]!)) as unknown as [number, number, number],
  }));
}

/** Anchor counts per level and per location, as the matcher needs them. */
export function anchorCounts(levels: readonly AnchorLevel[]): { perLevel: number[]; perLocation: number } {
  const perLoc = levels.map(anchorsPerLocation);
  return { perLevel: levels.map(anchorsInLevel), perLocation: perLoc[0] ?? 0 };
}
