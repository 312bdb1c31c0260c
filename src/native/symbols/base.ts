// bun:ffi declarations of the base and CUDA-runtime families (crates/nndet-core/src/ffi/{base,cuda}.rs).
import { FFIType } from "bun:ffi";

const { i32, u32, u64, f32, f64, ptr } = FFIType;

export const baseSymbols = {
  nd_abi_version: { args: [], returns: i32 },
  nd_last_error: { args: [ptr, u64], returns: i32 },
  nd_has_cuda: { args: [], returns: i32 },
  nd_build_info: { args: [ptr, u64, ptr], returns: i32 },
  nd_cpu_features: { args: [ptr, ptr], returns: i32 },
  nd_num_threads: { args: [ptr], returns: i32 },
  nd_host_alloc: { args: [u64, ptr], returns: i32 },
  nd_host_free: { args: [u64], returns: i32 },
  nd_convert_f32: { args: [ptr, u64, i32, i32, f64, f64, ptr, u64], returns: i32 },
  nd_stats_f32: { args: [ptr, u64, ptr, u64], returns: i32 },
  nd_cuda_versions: { args: [ptr, ptr], returns: i32 },
  nd_device_count: { args: [ptr], returns: i32 },
  nd_device_props: { args: [i32, ptr, u64, ptr, u64], returns: i32 },
  nd_cuda_set_device: { args: [i32], returns: i32 },
  nd_cuda_mem_info: { args: [ptr, ptr], returns: i32 },
  nd_dev_malloc: { args: [i32, u64, ptr], returns: i32 },
  nd_dev_free: { args: [i32, u64], returns: i32 },
  nd_dev_upload: { args: [i32, u64, u64, ptr, u64], returns: i32 },
  nd_dev_download: { args: [i32, u64, u64, ptr, u64], returns: i32 },
  nd_dev_memset: { args: [i32, u64, u32, u64], returns: i32 },
  nd_dev_sync: { args: [i32], returns: i32 },
  nd_dev_saxpy: { args: [i32, f32, u64, u64, u64], returns: i32 },
  nd_dev_stream_create: { args: [i32, ptr], returns: i32 },
  nd_dev_stream_destroy: { args: [i32, u64], returns: i32 },
  nd_dev_stream_sync: { args: [i32, u64], returns: i32 },
  nd_debug_panic: { args: [i32], returns: i32 },
} as const;
