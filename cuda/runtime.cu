// CUDA runtime basics for the Rust core: device count and properties, device memory, copies, sync.
// GPU build only; emu/runtime.cpp is the emulator's counterpart. Declared in crates/nndet-core/src/cuda/mod.rs.
#include "common.cuh"
#include <string.h>

NDK_EXPORT const char* ndk_error_string(int code) { return cudaGetErrorString((cudaError_t)code); }

NDK_EXPORT int ndk_runtime_version(int* out) { return (int)cudaRuntimeGetVersion(out); }

NDK_EXPORT int ndk_driver_version(int* out) { return (int)cudaDriverGetVersion(out); }

NDK_EXPORT int ndk_device_count(int* out) {
  *out = 0;
  return (int)cudaGetDeviceCount(out);
}

// name: at least 256 bytes.
NDK_EXPORT int ndk_device_props(int dev, char* name, uint64_t* total_mem, int* major, int* minor, int* sm_count) {
  cudaDeviceProp p;
  NDK_TRY(cudaGetDeviceProperties(&p, dev));
  strncpy(name, p.name, 255);
  name[255] = 0;
  *total_mem = (uint64_t)p.totalGlobalMem;
  *major = p.major;
  *minor = p.minor;
  *sm_count = p.multiProcessorCount;
  return 0;
}

NDK_EXPORT int ndk_mem_info(uint64_t* free_b, uint64_t* total_b) {
  size_t f = 0, t = 0;
  NDK_TRY(cudaMemGetInfo(&f, &t));
  *free_b = f;
  *total_b = t;
  return 0;
}

NDK_EXPORT int ndk_set_device(int dev) { return (int)cudaSetDevice(dev); }

NDK_EXPORT int ndk_malloc(void** out, uint64_t bytes) { return (int)cudaMalloc(out, bytes); }

NDK_EXPORT int ndk_free(void* p) { return (int)cudaFree(p); }

// NOTE: from pageable memory cudaMemcpy may return before the DMA has landed, and the legacy stream does not
// order against non-blocking streams: wait, so a kernel queued next on any stream sees the data.
NDK_EXPORT int ndk_memcpy_h2d(void* dst, const void* src, uint64_t bytes) {
  NDK_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  return (int)cudaDeviceSynchronize();
}

NDK_EXPORT int ndk_memcpy_d2h(void* dst, const void* src, uint64_t bytes) {
  return (int)cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
}

NDK_EXPORT int ndk_memcpy_d2d(void* dst, const void* src, uint64_t bytes) {
  return (int)cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice);
}

// Synchronous, like the copies: cudaMemset alone may still be running when a kernel on another
// (non-blocking) stream starts.
NDK_EXPORT int ndk_memset(void* dst, int value, uint64_t bytes) {
  NDK_TRY(cudaMemset(dst, value, bytes));
  return (int)cudaDeviceSynchronize();
}

NDK_EXPORT int ndk_synchronize() { return (int)cudaDeviceSynchronize(); }

// A non-blocking stream for one model's work (kernels of one step run in order on it).
NDK_EXPORT int ndk_stream_create(void** out) {
  cudaStream_t s = nullptr;
  NDK_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  *out = (void*)s;
  return 0;
}

NDK_EXPORT int ndk_stream_destroy(void* s) { return (int)cudaStreamDestroy((cudaStream_t)s); }

NDK_EXPORT int ndk_stream_sync(void* s) { return (int)cudaStreamSynchronize((cudaStream_t)s); }
