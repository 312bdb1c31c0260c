// bun:ffi declarations of the device kernels the network runs (crates/nndet-core/src/ffi/gpu.rs). Device
// addresses and streams are u64 (bigint); backend 0 = cuda, 1 = emu.
import { FFIType } from "bun:ffi";

const { i32, u32, u64, f32, ptr } = FFIType;

export const gpuSymbols = {
  nd_gpu_conv_sizes: { args: [i32, ptr, u64, ptr, u64], returns: i32 },
  nd_gpu_conv_pack: { args: [i32, i32, ptr, u64, u64, u64, u64, u64], returns: i32 },
  nd_gpu_conv_fwd: { args: [i32, i32, ptr, u64, u64, u64, u64, u64, u64], returns: i32 },
  nd_gpu_conv_bwd_data: { args: [i32, i32, ptr, u64, u64, u64, u64, u64], returns: i32 },
  nd_gpu_conv_bwd_weight: { args: [i32, i32, ptr, u64, u64, u64, u64, u64, u64, u64], returns: i32 },
  nd_gpu_norm_ws_bytes: { args: [ptr, ptr], returns: i32 },
  nd_gpu_norm_fwd: { args: [i32, ptr, u64, u64, u64, u64, u64, u64, u64, f32, f32, u64], returns: i32 },
  nd_gpu_norm_bwd: { args: [i32, ptr, u64, u64, u64, u64, u64, u64, u64, u64, u64, u64, f32, u64], returns: i32 },
  nd_gpu_permute_fwd: { args: [i32, ptr, u64, u64, u64], returns: i32 },
  nd_gpu_permute_bwd: { args: [i32, ptr, u64, u64, u64], returns: i32 },
  nd_gpu_scale_fwd: { args: [i32, i32, u64, u64, u64, u64, u64], returns: i32 },
  nd_gpu_scale_bwd: { args: [i32, u64, u64, u64, u64, u64, u64, i32, i32, u64, u64], returns: i32 },
  nd_gpu_scale_ws_bytes: { args: [], returns: u64 },
  nd_gpu_sgd_step: { args: [i32, u64, u64, u64, u64, u64, f32, f32, f32, i32, u64], returns: i32 },
  nd_gpu_average_update: { args: [i32, u64, u64, u64, u64, u64], returns: i32 },
  nd_gpu_to_ndhwc: { args: [i32, u64, u64, u64, u64, u64, u64], returns: i32 },
  nd_gpu_to_ncdhw: { args: [i32, u64, u64, u64, u64, u64, u64], returns: i32 },
  nd_gpu_fill: { args: [i32, u64, u64, u32, u32, u64], returns: i32 },
} as const;
