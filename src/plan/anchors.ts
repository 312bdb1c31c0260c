// Anchor planning (spec §3.9; nnDetection `_plan_anchors`, `find_anchors`): 3 sizes per axis at the
// first detection level (27 anchors per position), scaled per level by nnDetection's multipliers, chosen
// to maximise the mean over GT boxes of the best IoU with any anchor (boxes and anchors centred at 0).
// nnDetection optimises with nevergrad's TwoPointsDE (5000 evaluations, 3 runs); we run a seeded
// integer differential evolution with the same budget, bounds (≥ 1) and start (4, 8, 16).
import { boxSize } from "../data/boxes";
import { percentile } from "../data/stats";

/** Per decoder level the integer multiplier of the base sizes: cumulative product of the kept pooling
 *  kernels divided by the first pooling kernel. NOTE [quirk]: dividing by the first kernel makes an
 *  anisotropic first pool ([1,2,2]) double axis 0 relative to the others ((2,1,1), (4,2,2), …); axes not
 *  pooled at a level keep the previous multiplier. */
export function levelMultipliers(strides: number[][], decoderLevels: number[]): number[][] {
  const f = [[1, 1, 1], ...strides];
  const kept = decoderLevels.map((l) => f[l]!);
  const out: number[][] = [];
  let acc = [1, 1, 1];
  for (const k of kept) {
    acc = acc.map((a, i) => a * k[i]!);
    out.push(acc.map((a, i) => a / strides[0]![i]!));
  }
  return out;
}

/** Box sizes [n][3] with boxes outside the (0.5, 99.5) percentile band on any axis removed (strictly;
 *  drops outliers, which would otherwise pull anchors to extreme shapes). If nothing survives (e.g. all
 *  boxes equal), all boxes are kept. */
export function filterBoxSizes(sizes: number[][]): number[][] {
  const lo = [0, 1, 2].map((i) => percentile(sizes.map((s) => s[i]!), 0.5));
  const hi = [0, 1, 2].map((i) => percentile(sizes.map((s) => s[i]!), 99.5));
  const kept = sizes.filter((s) => s.every((x, i) => x > lo[i]! && x < hi[i]!));
  return kept.length > 0 ? kept : sizes;
}

/** Anchor sizes per level for base sizes `base` = [w1,w2,w3,h1,h2,h3,d1,d2,d3]: width per level etc. */
export function anchorsPerLevel(base: number[], mult: number[][]): { width: number[][]; height: number[][]; depth: number[][] } {
  const w = base.slice(0, 3);
  const h = base.slice(3, 6);
  const d = base.slice(6, 9);
  return {
    width: mult.map((m) => w.map((x) => x * m[0]!)),
    height: mult.map((m) => h.map((x) => x * m[1]!)),
    depth: mult.map((m) => d.map((x) => x * m[2]!)),
  };
}

/** Mean best IoU of centred GT sizes against the anchor set base ∪ base·m₁ ∪ … (nnDetection's objective
 *  includes the unscaled base set once more). */
export function meanBestIou(gt: number[][], base: number[], mult: number[][]): number {
  const sets = [[1, 1, 1], ...mult];
  const a0: number[] = [];
  const a1: number[] = [];
  const a2: number[] = [];
  for (const m of sets) {
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) {
      a0.push(base[i]! * m[0]!);
      a1.push(base[3 + j]! * m[1]!);
      a2.push(base[6 + k]! * m[2]!);
    }
  }
  let total = 0;
  for (const g of gt) {
    const [g0, g1, g2] = g as [number, number, number];
    const gv = g0 * g1 * g2;
    let best = 0;
    for (let a = 0; a < a0.length; a++) {
      const x = a0[a]!;
      const y = a1[a]!;
      const z = a2[a]!;
      const inter = (x < g0 ? x : g0) * (y < g1 ? y : g1) * (z < g2 ? z : g2);
      const iou = inter / (gv + x * y * z - inter);
      if (iou > best) best = iou;
    }
    total += best;
  }
  return gt.length ? total / gt.length : 0;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface AnchorSearch {
  budget?: number;
  runs?: number;
  seed?: number;
  /** At most this many GT boxes drive the search (a seeded subsample); the reported IoU uses all. */
  maxBoxes?: number;
}

/** Integer differential evolution (rand/1/bin, F 0.8, CR 0.9) over the 9 base sizes, bounds
 *  [1, 2·max GT size of the axis]; `runs` seeded runs of `budget` evaluations, the best result wins. */
export function optimiseAnchors(gt: number[][], mult: number[][], opts: AnchorSearch = {}): { base: number[]; meanIou: number } {
  const budget = opts.budget ?? 5000;
  const runs = opts.runs ?? 3;
  const maxBoxes = opts.maxBoxes ?? 1000;
  const rnd0 = mulberry32((opts.seed ?? 0) + 7919);
  const sample = gt.length > maxBoxes ? [...gt].sort(() => rnd0() - 0.5).slice(0, maxBoxes) : gt;
  const upper = [0, 1, 2].map((i) => Math.max(16, 2 * Math.max(...gt.map((g) => g[i]!))));
  const ub = (j: number) => upper[Math.floor(j / 3)]!;
  const fix = (x: number[]) => x.map((v, j) => Math.min(ub(j), Math.max(1, Math.round(v))));
  let best = { base: fix([4, 8, 16, 4, 8, 16, 4, 8, 16]), score: -1 };
  for (let r = 0; r < runs; r++) {
    const rnd = mulberry32((opts.seed ?? 0) * 1000 + r + 1);
    const np = 24;
    const pop: number[][] = [fix([4, 8, 16, 4, 8, 16, 4, 8, 16])];
    while (pop.length < np) pop.push(Array.from({ length: 9 }, (_, j) => 1 + Math.floor(rnd() * ub(j))));
    const fit = pop.map((p) => meanBestIou(sample, p, mult));
    let evals = np;
    while (evals < budget) {
      for (let i = 0; i < np && evals < budget; i++) {
        let a = i;
        let b = i;
        let c = i;
        while (a === i) a = Math.floor(rnd() * np);
        while (b === i || b === a) b = Math.floor(rnd() * np);
        while (c === i || c === a || c === b) c = Math.floor(rnd() * np);
        const jr = Math.floor(rnd() * 9);
        const trial = fix(pop[i]!.map((x, j) => (j === jr || rnd() < 0.9 ? pop[a]![j]! + 0.8 * (pop[b]![j]! - pop[c]![j]!) : x)));
        const f = meanBestIou(sample, trial, mult);
        evals++;
        if (f >= fit[i]!) {
          pop[i] = trial;
          fit[i] = f;
        }
      }
    }
    const k = fit.indexOf(Math.max(...fit));
    if (fit[k]! > best.score) best = { base: pop[k]!, score: fit[k]! };
  }
  return { base: best.base, meanIou: meanBestIou(gt, best.base, mult) };
}

/** GT box sizes in preprocessed voxels: per case transposed and scaled by spacing / target spacing. */
export function scaledBoxSizes(
  cases: { boxes: number[][]; spacing: number[] }[],
  perm: readonly number[],
  targetTransposed: readonly number[],
): number[][] {
  const out: number[][] = [];
  for (const c of cases) {
    const sp = perm.map((i) => c.spacing[i]!);
    for (const b of c.boxes) {
      const s = boxSize(b);
      out.push(perm.map((ax, i) => (s[ax]! * sp[i]!) / targetTransposed[i]!));
    }
  }
  return out;
}
