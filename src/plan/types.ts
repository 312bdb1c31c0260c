// The plan nnDetection's planner D3V001 writes (`preprocessed/D3V001_3d.json`; nnDetection's
// `D3V001_3d.pkl`, spec §3.11), as JSON with the same key names, validated when read. The `architecture`
// block is what the engine builds RetinaUNetV001 from:
//   conv_kernels  [stages][3]  kernel per encoder stage (stage 0 .. bottleneck), in transposed axis order
//   strides       [stages−1][3] pooling (stride) of stages 1..; patch must be divisible by their product
//   decoder_levels             encoder levels the detection heads see (P_l), e.g. [2,3,4,5,6]
//   start_channels 32, max_channels 320, fpn_channels 128, head_channels 128, in_channels M,
//   classifier_classes = seg_classes = K (foreground classes; background implicit)
// `anchors`: per decoder level one 3-tuple of sizes per axis (width = axis 0, height = 1, depth = 2);
// the generator takes their Cartesian product (27 anchors per position).
import * as v from "valibot";
import { parseArtifact } from "../config/validate";
import { IntensityStatsSchema } from "../data/stats";

export const PLAN_VERSION = 1;

const num = v.number();
const int = v.pipe(v.number(), v.integer());
const vec3 = v.pipe(v.array(num), v.length(3));
const ivec3 = v.pipe(v.array(int), v.length(3));

export const ArchitectureSchema = v.object({
  arch_name: v.literal("RetinaUNetV001"),
  start_channels: int,
  max_channels: int,
  fpn_channels: int,
  head_channels: int,
  classifier_classes: int,
  seg_classes: int,
  in_channels: int,
  dim: v.literal(3),
  class_weight: v.array(num),
  conv_kernels: v.array(ivec3),
  strides: v.array(ivec3),
  decoder_levels: v.array(int),
});
export type Architecture = v.InferOutput<typeof ArchitectureSchema>;

export const AnchorsSchema = v.object({
  width: v.array(v.array(num)),
  height: v.array(v.array(num)),
  depth: v.array(v.array(num)),
  stride: num,
});
export type Anchors = v.InferOutput<typeof AnchorsSchema>;

export const PlanSchema = v.object({
  version: v.literal(PLAN_VERSION),
  planner_id: v.literal("D3V001"),
  mode: v.string(),
  data_identifier: v.string(),
  network_dim: v.literal(3),
  dim: v.literal(3),
  target_spacing: vec3,
  target_spacing_transposed: vec3,
  transpose_forward: ivec3,
  transpose_backward: ivec3,
  median_shape_transposed: vec3,
  normalization_schemes: v.record(v.string(), v.picklist(["CT", "CT2", "nonCT", "raw"])),
  use_mask_for_norm: v.record(v.string(), v.boolean()),
  intensity_properties: v.record(v.string(), v.nullable(IntensityStatsSchema)),
  anisotropy_threshold: num,
  resample_anisotropy_threshold: num,
  target_spacing_percentile: num,
  num_modalities: int,
  modalities: v.record(v.string(), v.string()),
  all_classes: v.array(int),
  num_classes: int,
  patch_size: ivec3,
  batch_size: int,
  do_dummy_2D_data_aug: v.boolean(),
  trigger_lr1: v.optional(v.boolean()),
  architecture: ArchitectureSchema,
  anchors: AnchorsSchema,
  /** Mean over GT boxes of the best anchor IoU that anchor planning reached. */
  anchor_mean_iou: num,
  /** Memory estimate of one training step at (patch_size, batch_size) and the budget it was fitted to. */
  memory: v.object({ estimator: v.string(), budget_bytes: num, estimated_bytes: num }),
  num_instances_per_patch: int,
  fingerprint: v.string(),
});
export type Plan = v.InferOutput<typeof PlanSchema>;

/** Validate a parsed plan JSON with a readable error. */
export function parsePlan(json: unknown, where = "plan"): Plan {
  return parseArtifact(PlanSchema, json, where, "plan");
}

/** Bytes one training step needs for this architecture, patch and batch (the planner's fit test). */
export type MemoryEstimator = (arch: Architecture, patch: number[], batch: number) => number;
