// bun:ffi declarations of the engine family (crates/nndet-core/src/ffi/engine.rs): norm (+ fused activation),
// activations, add, learnable scale, head permute, SGD and parameter averaging.
import { FFIType } from "bun:ffi";

const { i32, u64, f32, ptr } = FFIType;

export const engineSymbols = {
  nd_norm_fwd: { args: [ptr, ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64, f32, f32], returns: i32 },
  nd_norm_bwd: {
    args: [ptr, ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64, f32],
    returns: i32,
  },
  nd_act_fwd: { args: [i32, f32, ptr, u64, ptr, u64], returns: i32 },
  nd_act_bwd: { args: [i32, f32, ptr, u64, ptr, u64, ptr, u64, i32], returns: i32 },
  nd_add: { args: [ptr, u64, ptr, u64, ptr, u64], returns: i32 },
  nd_scale_fwd: { args: [ptr, u64, ptr, u64, ptr, u64], returns: i32 },
  nd_scale_bwd: { args: [ptr, u64, ptr, u64, ptr, u64, ptr, u64, ptr, u64, i32, i32], returns: i32 },
  nd_permute_fwd: { args: [ptr, ptr, u64, ptr, u64], returns: i32 },
  nd_permute_bwd: { args: [ptr, ptr, u64, ptr, u64], returns: i32 },
  nd_sgd_step: { args: [ptr, u64, ptr, u64, ptr, u64, ptr, u64, f32, f32, f32, i32], returns: i32 },
  nd_average_update: { args: [ptr, u64, ptr, u64, u64], returns: i32 },
} as const;
