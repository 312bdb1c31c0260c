// The architecture block of a plan (nnDetection's plan["architecture"], spec §3.3/§3.11, field names kept)
// and the shapes RetinaUNetV001 derives from it (spec §5.1-5.4). The planner (a later issue) produces this
// block; only what the graph needs is here.
//
// Axes are array axes of the transposed preprocessed image: [d, h, w] = axes 0, 1, 2; kernels and strides
// are per axis. Stage s has conv_kernels[s]; stage s >= 1 starts with a conv of stride strides[s-1].

export type Vec3 = [number, number, number];

export interface ArchPlan {
  /** input modalities (nnDetection `in_channels`) */
  in_channels: number;
  /** channels of stage 0 (32); doubled per stage */
  start_channels: number;
  /** cap on encoder channels (320) */
  max_channels: number;
  /** decoder channels at detection levels (128) */
  fpn_channels: number;
  /** head trunk channels (128); GroupNorm uses head_channels/16 groups */
  head_channels: number;
  /** foreground classes K (nnDetection `classifier_classes`) */
  classifier_classes: number;
  /** per-stage conv kernels, length = #pools + 1 */
  conv_kernels: Vec3[];
  /** per-pool strides, length = #pools */
  strides: Vec3[];
  /** decoder levels the heads see, ascending */
  decoder_levels: number[];
  /** anchors per position (27 = 3 widths x 3 heights x 3 depths) */
  anchors_per_pos?: number;
}

/** Everything shape-like the graph needs for (plan, patch, batch). */
export interface ArchShapes {
  batch: number;
  patch: Vec3;
  stages: number;
  /** encoder channels per stage */
  enc: number[];
  /** decoder output channels per level */
  dec: number[];
  /** spatial size per level */
  dims: Vec3[];
  anchors: number;
  classes: number;
  /** anchors of one image, all detection levels */
  anchorsTotal: number;
  /** first anchor of each detection level (index into decoder_levels) */
  anchorOffset: number[];
}

const vol = (v: Vec3): number => v[0] * v[1] * v[2];

function fail(msg: string): never {
  throw new Error(`architecture plan: ${msg}`);
}

export function checkPlan(p: ArchPlan): void {
  const S = p.conv_kernels.length;
  if (S < 2) fail(`needs at least 2 stages, got ${S} conv_kernels`);
  if (p.strides.length !== S - 1) fail(`strides has ${p.strides.length} entries, expected ${S - 1} (conv_kernels - 1)`);
  for (const k of p.conv_kernels) if (k.length !== 3 || k.some((v) => v !== 1 && v !== 3)) fail(`conv kernel [${k}] must be 1 or 3 per axis`);
  for (const s of p.strides) if (s.length !== 3 || s.some((v) => v !== 1 && v !== 2)) fail(`stride [${s}] must be 1 or 2 per axis`);
  if (!p.decoder_levels.length || p.decoder_levels.some((l, i) => l < 1 || l >= S || (i > 0 && l <= p.decoder_levels[i - 1]!))) {
    fail(`decoder_levels [${p.decoder_levels}] must be ascending within 1..${S - 1}`);
  }
  if (p.head_channels % 16 !== 0) fail(`head_channels ${p.head_channels} must be a multiple of 16 (GroupNorm groups = C/16)`);
  for (const k of ["in_channels", "start_channels", "max_channels", "fpn_channels", "classifier_classes"] as const) {
    if (!(Number.isInteger(p[k]) && p[k] > 0)) fail(`${k} must be a positive integer, got ${p[k]}`);
  }
}

/** Channels and sizes per level. The patch must be divisible by the product of strides per axis. */
export function archShapes(p: ArchPlan, patch: Vec3, batch: number): ArchShapes {
  checkPlan(p);
  if (!(Number.isInteger(batch) && batch > 0)) fail(`batch must be a positive integer, got ${batch}`);
  const S = p.conv_kernels.length;
  const enc: number[] = [];
  for (let s = 0; s < S; s++) enc.push(s === 0 ? p.start_channels : Math.min(2 * enc[s - 1]!, p.max_channels));
  // spec §5.2: fpn_channels at levels >= min(decoder_levels), max(8, next // 2) below
  const dec = new Array<number>(S).fill(p.fpn_channels);
  const minLevel = p.decoder_levels[0]!;
  for (let l = S - 1; l >= 0; l--) if (l < minLevel) dec[l] = Math.max(8, Math.floor(dec[l + 1]! / 2));
  const dims: Vec3[] = [patch.slice() as Vec3];
  for (let s = 1; s < S; s++) {
    const prev = dims[s - 1]!;
    const st = p.strides[s - 1]!;
    const next = prev.map((v, a) => {
      if (v % st[a]! !== 0) fail(`patch [${patch}] is not divisible by the strides on axis ${a} at stage ${s}`);
      return v / st[a]!;
    }) as Vec3;
    dims.push(next);
  }
  const anchors = p.anchors_per_pos ?? 27;
  const anchorOffset: number[] = [];
  let total = 0;
  for (const l of p.decoder_levels) {
    anchorOffset.push(total);
    total += vol(dims[l]!) * anchors;
  }
  return {
    batch, patch: patch.slice() as Vec3, stages: S, enc, dec, dims, anchors, classes: p.classifier_classes,
    anchorsTotal: total, anchorOffset,
  };
}

export { vol };
