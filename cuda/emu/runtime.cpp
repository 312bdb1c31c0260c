// The emulator's runtime launchers (the emulated counterparts of ../runtime.cu): "device" memory is host
// memory, copies are memcpy, synchronize reports the sticky launch error. Exported as ndke_<op>.
#include <cstdlib>

#include "../common.cuh"

NDK_EXPORT const char* ndke_error_string(int code) { return nd_emu::error_string(code); }

NDK_EXPORT int ndke_malloc(void** out, uint64_t bytes) {
  // 256-byte aligned, as cudaMalloc guarantees, with guard zones (see emu.h)
  *out = nd_emu::dev_alloc(bytes);
  return *out ? 0 : (int)cudaErrorMemoryAllocation;
}

NDK_EXPORT int ndke_free(void* p) {
  if (!nd_emu::dev_free(p)) return (int)cudaGetLastError() ? (int)cudaErrorLaunchFailure : (int)cudaErrorInvalidValue;
  return 0;
}

NDK_EXPORT int ndke_memcpy_h2d(void* dst, const void* src, uint64_t bytes) { return (int)cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice); }
NDK_EXPORT int ndke_memcpy_d2h(void* dst, const void* src, uint64_t bytes) { return (int)cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost); }
NDK_EXPORT int ndke_memcpy_d2d(void* dst, const void* src, uint64_t bytes) { return (int)cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice); }
NDK_EXPORT int ndke_memset(void* dst, int value, uint64_t bytes) { return (int)cudaMemset(dst, value, bytes); }
NDK_EXPORT int ndke_synchronize() {
  nd_emu::check_guards("synchronize");
  return (int)cudaGetLastError();
}

// Emulated streams: every launch already ran to completion; a stream is only a distinct token.
NDK_EXPORT int ndke_stream_create(void** out) {
  *out = std::malloc(1);
  return *out ? 0 : (int)cudaErrorMemoryAllocation;
}

NDK_EXPORT int ndke_stream_destroy(void* s) {
  std::free(s);
  return 0;
}

NDK_EXPORT int ndke_stream_sync(void*) {
  nd_emu::check_guards("stream synchronize");
  return (int)cudaGetLastError();
}
