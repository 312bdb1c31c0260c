// bun:ffi declarations of the preprocessing family (crates/nndet-core/src/ffi/prep.rs).
import { FFIType } from "bun:ffi";

const { i32, u64, ptr } = FFIType;

export const prepSymbols = {
  nd_resample3d: { args: [ptr, u64, ptr, u64, ptr, i32, i32], returns: i32 },
  nd_resample3d_labels: { args: [ptr, u64, ptr, u64, ptr], returns: i32 },
  nd_nonzero_mask: { args: [ptr, u64, i32, ptr, ptr, u64, ptr], returns: i32 },
  nd_label_extents: { args: [ptr, u64, ptr, ptr, u64, ptr], returns: i32 },
  nd_round_labels: { args: [ptr, ptr, u64], returns: i32 },
} as const;
