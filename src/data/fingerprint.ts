// The dataset fingerprint (spec §3.2; nnDetection `analyzer.py` + `properties/*`), written to
// `preprocessed/properties/fingerprint.json` (versioned, valibot-validated when read). Per case: sizes and
// spacing (array order), crop box, instances from the json, per-class counts, volumes (mm³), boxes from
// the cropped instance mask (original voxel spacing, box convention of boxes.ts), pairwise IoUs, and the
// foreground intensity statistics of every 10th foreground voxel (seg > 0, C-order) per modality; over
// the dataset: the same statistics of the concatenated samples, class counts and IoUs.
import * as v from "valibot";
import { parseArtifact } from "../config/validate";
import { labelBoxes } from "../native";
import { type Box, pairwiseIous } from "./boxes";
import type { CroppedCase } from "./crop";
import { type IntensityStats, IntensityStatsSchema, intensityStats } from "./stats";

export const FINGERPRINT_VERSION = 1;

const num = v.number();
const vec3 = v.pipe(v.array(num), v.length(3));

export const CaseFingerprintSchema = v.object({
  case: v.string(),
  originalSize: vec3,
  spacing: vec3,
  sizeAfterCropping: vec3,
  cropBbox: v.array(v.tuple([num, num])),
  classes: v.array(num),
  instances: v.record(v.string(), num),
  numInstances: v.record(v.string(), num),
  hasClasses: v.array(num),
  volumePerClass: v.record(v.string(), num),
  regionVolumePerClass: v.record(v.string(), v.array(num)),
  boxes: v.array(v.pipe(v.array(num), v.length(6))),
  boxIds: v.array(num),
  boxClasses: v.array(num),
  lostInstances: v.array(num),
  allIous: v.array(num),
  classIous: v.record(v.string(), v.array(num)),
  intensity: v.array(v.nullable(IntensityStatsSchema)),
  foregroundSamples: num,
});
export type CaseFingerprint = v.InferOutput<typeof CaseFingerprintSchema>;

export const FingerprintSchema = v.object({
  version: v.literal(FINGERPRINT_VERSION),
  dim: v.literal(3),
  modalities: v.record(v.string(), v.string()),
  labels: v.record(v.string(), v.string()),
  cases: v.array(CaseFingerprintSchema),
  allSizes: v.array(vec3),
  allSpacings: v.array(vec3),
  sizeReductions: v.array(num),
  allClasses: v.array(num),
  numInstances: v.record(v.string(), num),
  allIous: v.array(num),
  classIous: v.record(v.string(), v.array(num)),
  intensityProperties: v.record(v.string(), v.nullable(IntensityStatsSchema)),
});
export type Fingerprint = v.InferOutput<typeof FingerprintSchema>;

/** Validate a parsed fingerprint.json, with a readable error. */
export function parseFingerprint(json: unknown, where = "fingerprint.json"): Fingerprint {
  return parseArtifact(FingerprintSchema, json, where, "fingerprint");
}

export interface CaseMeta {
  case: string;
  /** Size of the raw image, array order. */
  originalSize: number[];
  /** Voxel spacing, array order. */
  spacing: number[];
  /** Instance id (string) -> class, from labelsTr/{case}.json. */
  instances: Record<string, number>;
}

/** Every 10th foreground voxel (seg > 0) per modality, in C-order (nnU-Net `_get_voxels_in_foreground`). */
export function foregroundSamples(c: CroppedCase): Float32Array[] {
  const n = c.seg.length;
  const idx: number[] = [];
  let k = 0;
  for (let i = 0; i < n; i++) if (c.seg[i]! > 0) (k++ % 10 === 0 ? idx.push(i) : 0);
  return Array.from({ length: c.channels }, (_, ch) => {
    const d = c.data.subarray(ch * n, (ch + 1) * n);
    return Float32Array.from(idx, (i) => d[i]!);
  });
}

/** Instance and intensity analysis of one cropped case. `numClasses` = number of labels. */
export function analyzeCase(meta: CaseMeta, c: CroppedCase, samples: Float32Array[], numClasses: number): CaseFingerprint {
  const voxelVolume = meta.spacing.reduce((a, b) => a * b, 1);
  const { ids, boxes, voxels } = labelBoxes(c.seg, c.shape);
  const classOf = (id: number) => meta.instances[String(id)];
  const numInstances: Record<string, number> = {};
  const volumePerClass: Record<string, number> = {};
  const regionVolumePerClass: Record<string, number[]> = {};
  for (let k = 0; k < numClasses; k++) {
    numInstances[k] = 0;
    volumePerClass[k] = 0;
    regionVolumePerClass[k] = [];
  }
  for (const cls of Object.values(meta.instances)) numInstances[cls] = (numInstances[cls] ?? 0) + 1;
  const kept: number[] = [];
  ids.forEach((id, i) => {
    const cls = classOf(id);
    if (cls === undefined) return; // a mask id without a json entry: reported by the data check
    kept.push(i);
    volumePerClass[cls] = (volumePerClass[cls] ?? 0) + voxels[i]! * voxelVolume;
    (regionVolumePerClass[cls] ??= []).push(voxels[i]! * voxelVolume);
  });
  const kBoxes = kept.map((i) => boxes[i]!);
  const kIds = kept.map((i) => ids[i]!);
  const kClasses = kIds.map((id) => classOf(id)!);
  const classIous: Record<string, number[]> = {};
  for (let k = 0; k < numClasses; k++) classIous[k] = pairwiseIous(kBoxes.filter((_, i) => kClasses[i] === k));
  const present = new Set(ids);
  return {
    case: meta.case,
    originalSize: [...meta.originalSize],
    spacing: [...meta.spacing],
    sizeAfterCropping: [...c.shape],
    cropBbox: c.bbox.map(([a, b]) => [a, b] as [number, number]),
    classes: c.classes,
    instances: { ...meta.instances },
    numInstances,
    hasClasses: [...new Set(Object.values(meta.instances))].sort((a, b) => a - b),
    volumePerClass,
    regionVolumePerClass,
    boxes: kBoxes,
    boxIds: kIds,
    boxClasses: kClasses,
    lostInstances: Object.keys(meta.instances)
      .map(Number)
      .filter((id) => !present.has(id)),
    allIous: pairwiseIous(kBoxes),
    classIous,
    intensity: samples.map((s) => (s.length ? intensityStats(s) : null)),
    foregroundSamples: samples[0]?.length ?? 0,
  };
}

/** The dataset fingerprint from per-case analyses and their foreground samples ([case][modality]). */
export function buildFingerprint(
  dataset: { modalities: Record<string, string>; labels: Record<string, string> },
  cases: CaseFingerprint[],
  samples: Float32Array[][],
): Fingerprint {
  const numInstances: Record<string, number> = {};
  const classIous: Record<string, number[]> = {};
  for (const k of Object.keys(dataset.labels)) {
    numInstances[k] = 0;
    classIous[k] = [];
  }
  const allIous: number[] = [];
  for (const c of cases) {
    for (const [k, n] of Object.entries(c.numInstances)) numInstances[k] = (numInstances[k] ?? 0) + n;
    for (const [k, l] of Object.entries(c.classIous)) (classIous[k] ??= []).push(...l);
    allIous.push(...c.allIous);
  }
  const intensityProperties: Record<string, IntensityStats | null> = {};
  Object.keys(dataset.modalities).forEach((m, mi) => {
    const total = samples.reduce((a, s) => a + (s[mi]?.length ?? 0), 0);
    const all = new Float32Array(total);
    let o = 0;
    for (const s of samples) {
      all.set(s[mi]!, o);
      o += s[mi]!.length;
    }
    intensityProperties[m] = total ? intensityStats(all) : null;
  });
  return {
    version: FINGERPRINT_VERSION,
    dim: 3,
    modalities: { ...dataset.modalities },
    labels: { ...dataset.labels },
    cases,
    allSizes: cases.map((c) => c.sizeAfterCropping),
    allSpacings: cases.map((c) => c.spacing),
    sizeReductions: cases.map((c) => prod(c.sizeAfterCropping) / prod(c.originalSize)),
    allClasses: Object.keys(dataset.labels).map(Number),
    numInstances,
    allIous,
    classIous,
    intensityProperties,
  };
}

function prod(x: readonly number[]): number {
  return x.reduce((a, b) => a * b, 1);
}

export type { Box };
