// bun:ffi declarations of the detection family (crates/nndet-core/src/ffi/detect.rs).
import { FFIType } from "bun:ffi";

const { i32, i64, u64, f32, f64, ptr } = FFIType;

export const detectSymbols = {
  nd_box_pairwise: { args: [ptr, u64, ptr, u64, i32, f32, ptr, u64], returns: i32 },
  nd_box_elementwise: { args: [ptr, ptr, u64, i32, f32, ptr, u64], returns: i32 },
  nd_box_areas_centers: { args: [ptr, u64, ptr, u64, ptr, u64], returns: i32 },
  nd_box_clip: { args: [ptr, u64, f32, f32, f32], returns: i32 },
  nd_box_remove_small: { args: [ptr, u64, f32, ptr, u64, ptr], returns: i32 },
  nd_instances_to_boxes: { args: [ptr, u64, i64, i64, i64, ptr, ptr, u64, ptr], returns: i32 },
  nd_anchors_generate: { args: [ptr, u64, ptr, u64, ptr, u64], returns: i32 },
  nd_box_encode: { args: [ptr, ptr, u64, ptr, ptr], returns: i32 },
  nd_box_decode: { args: [ptr, ptr, u64, ptr, f32, ptr], returns: i32 },
  nd_atss_match_levels: { args: [ptr, u64, ptr, u64, ptr, u64, i32, i32, ptr, u64], returns: i32 },
  nd_atss_match: { args: [ptr, u64, ptr, u64, ptr, u64, i32, i32, i32, i32, ptr, u64], returns: i32 },
  nd_hnm_sample: {
    args: [ptr, u64, ptr, u64, i32, i32, i32, f64, i32, f64, u64, ptr, u64, ptr, u64, ptr],
    returns: i32,
  },
  nd_bce_loss: { args: [ptr, u64, ptr, u64, i32, ptr, ptr], returns: i32 },
  nd_giou_loss: { args: [ptr, ptr, u64, f64, ptr, u64, ptr, ptr], returns: i32 },
  nd_head_loss: {
    args: [ptr, ptr, ptr, ptr, ptr, u64, i32, ptr, u64, ptr, u64, ptr, f32, ptr, ptr, ptr],
    returns: i32,
  },
  nd_seg_loss: { args: [ptr, u64, ptr, u64, i32, i32, f64, f64, ptr, ptr], returns: i32 },
  nd_nms: { args: [ptr, u64, ptr, u64, ptr, u64, f32, i32, ptr, ptr], returns: i32 },
  nd_weighted_nms: { args: [ptr, u64, ptr, ptr, ptr, u64, f32, i32, ptr, ptr], returns: i32 },
  nd_wbc: { args: [ptr, u64, ptr, ptr, ptr, ptr, u64, f32, f32, ptr, ptr, ptr, ptr], returns: i32 },
  nd_det_postprocess: {
    args: [ptr, u64, ptr, u64, ptr, f32, ptr, u64, i32, f32, f32, f32, i32, f32, i32, f32, f32, ptr, ptr, ptr, u64, ptr],
    returns: i32,
  },
} as const;
