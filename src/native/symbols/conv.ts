// bun:ffi declarations of the conv family (crates/nndet-core/src/ffi/conv.rs): Conv3d, ConvTranspose3d and
// the peak-FMA probe. Params travel as an Int32Array(20); lengths are f32 counts, the workspace is bytes.
import { FFIType } from "bun:ffi";

const { i32, u64, f64, ptr } = FFIType;

const ws = { args: [ptr, u64, ptr], returns: i32 } as const;
// params, x, w, bias, y, ws (each pointer followed by its length)
const fwd = { args: [ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64], returns: i32 } as const;
// params, dy, w, dx, ws
const bwdData = { args: [ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64], returns: i32 } as const;
// params, x, dy, dw, db, ws
const bwdWeight = { args: [ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64], returns: i32 } as const;

export const convSymbols = {
  nd_conv3d_workspace: ws,
  nd_conv3d_workspace_fwd: ws,
  nd_conv3d_fwd: fwd,
  nd_conv3d_bwd_data: bwdData,
  nd_conv3d_bwd_weight: bwdWeight,
  nd_convt3d_workspace: ws,
  nd_convt3d_workspace_fwd: ws,
  nd_convt3d_fwd: fwd,
  nd_convt3d_bwd_data: bwdData,
  nd_convt3d_bwd_weight: bwdWeight,
  nd_bench_peak_fma: { args: [f64, ptr], returns: i32 },
} as const;
