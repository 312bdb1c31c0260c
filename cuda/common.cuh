// Shared definitions for nndet's CUDA kernels and launchers. Every kernel file is compiled twice:
//  - by nvcc for the GPU (launchers exported as ndk_<op>), and
//  - by the host C++ compiler with -DND_EMU against emu/emu.h, a CPU emulator of the CUDA execution model
//    (threads as fibers, __syncthreads / warp collectives / mma.sync / ldmatrix / cp.async emulated), with
//    launchers exported as ndke_<op>. The Rust tests run every kernel through the emulator against the CPU
//    kernels on any machine, and through the GPU where there is one (crates/nndet-core/src/cuda/).
// So kernels use only what both sides provide: the macros and nd_* helpers below, CUDA built-ins
// (threadIdx, blockIdx, blockDim, gridDim, __syncthreads, __shfl*_sync, __ballot_sync, __syncwarp, atomics,
// __popc/__clz/__ffs, __float_as_uint/__uint_as_float, float math) and no other inline PTX.
//
// Launchers: `NDK_EXPORT int NDK(op)(..., void* stream)` return a cudaError_t as int (0 = success), launch
// asynchronously on `stream` (null = default stream) and never exit or throw. The Rust side validates
// arguments before calling them.
#pragma once
#include <stdint.h>

#include <algorithm>

#ifdef ND_EMU
#include "emu/emu.h"
#define NDK(name) ndke_##name
// NOTE: a kernel template with several arguments must be named through a local variable first
// (`auto k = kern<A, B>;`), since the macro would split its commas.
#define ND_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::nd_emu::launch(kernel, dim3(grid), dim3(block), (size_t)(smem), __VA_ARGS__)
#define ND_DYN_SMEM(T, name) T* name = reinterpret_cast<T*>(::nd_emu::dyn_smem())
#define ND_HD
#else
#include <cuda_runtime.h>
#define NDK(name) ndk_##name
#define ND_LAUNCH(kernel, grid, block, smem, stream, ...) \
  kernel<<<(grid), (block), (smem), (cudaStream_t)(stream)>>>(__VA_ARGS__)
#define ND_DYN_SMEM(T, name)                                     \
  extern __shared__ __align__(16) unsigned char nd_dyn_smem_[]; \
  T* name = reinterpret_cast<T*>(nd_dyn_smem_)
#define ND_HD __host__ __device__
#endif

#define NDK_EXPORT extern "C" __attribute__((visibility("default")))

// Return the error of a CUDA runtime call, if any.
#define NDK_TRY(call)                      \
  do {                                     \
    cudaError_t _e = (call);               \
    if (_e != cudaSuccess) return (int)_e; \
  } while (0)

// After a kernel launch: report launch errors.
#define NDK_LAUNCHED() NDK_TRY(cudaGetLastError())

// Allow `bytes` of dynamic shared memory for `kernel` (needed above 48 KiB; the emulator checks it too).
#define ND_SMEM_LIMIT(kernel, bytes) \
  NDK_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)(bytes)))

// ---- bf16 storage: raw 16-bit words (the top half of an IEEE float), fp32 arithmetic ----
typedef uint16_t nd_bf16;

__device__ static inline float nd_bf2f(nd_bf16 h) { return __uint_as_float((uint32_t)h << 16); }

// Round to nearest even, as __float2bfloat16_rn and torch do; NaN stays a (quiet) NaN.
__device__ static inline nd_bf16 nd_f2bf(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (nd_bf16)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (nd_bf16)(u >> 16);
}

// Two bf16 in one 32-bit register, `lo` in the low half (the element with the lower k index in mma).
ND_HD static inline uint32_t nd_pack_bf2(nd_bf16 lo, nd_bf16 hi) { return (uint32_t)lo | ((uint32_t)hi << 16); }

// ---- tensor cores (sm_80+): D += A * B for one warp, m16n8k16, bf16 inputs, fp32 accumulators ----
// Fragment layout (PTX ISA "mma.m16n8k16", .bf16): g = lane >> 2, t = lane & 3.
//   a[0] = A[g][2t..2t+1]   a[1] = A[g+8][2t..2t+1]   a[2] = A[g][2t+8..+9]   a[3] = A[g+8][2t+8..+9]
//   b[0] = B[2t..2t+1][g]   b[1] = B[2t+8..2t+9][g]           (pairs along k, the lower k in the low half)
//   d[0..1] = D[g][2t..2t+1]   d[2..3] = D[g+8][2t..2t+1]
__device__ static inline void nd_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef ND_EMU
  ::nd_emu::mma_bf16_16816(d, a, b);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: lane L gives the address of row (L & 7) of matrix
// (L >> 3) (16 bytes: 8 bf16, 16-byte aligned, in shared memory). Without .trans r[j] holds row g = L >> 2,
// columns 2t, 2t+1 (t = L & 3) of matrix j; with .trans it holds rows 2t, 2t+1 of column g.
__device__ static inline void nd_ldmatrix_x4(uint32_t r[4], const void* row_addr) {
#ifdef ND_EMU
  ::nd_emu::ldmatrix_x4(r, row_addr, false);
#else
  uint32_t a = (uint32_t)__cvta_generic_to_shared(row_addr);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
#endif
}
__device__ static inline void nd_ldmatrix_x4_trans(uint32_t r[4], const void* row_addr) {
#ifdef ND_EMU
  ::nd_emu::ldmatrix_x4(r, row_addr, true);
#else
  uint32_t a = (uint32_t)__cvta_generic_to_shared(row_addr);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
#endif
}

// ---- asynchronous global -> shared copies (sm_80 cp.async), 16 bytes; zero-filled when !pred ----
// The emulator delays the shared-memory write until the matching wait, so a missing wait shows in tests.
__device__ static inline void nd_cp_async16(void* smem, const void* gmem, bool pred) {
#ifdef ND_EMU
  ::nd_emu::cp_async16(smem, gmem, pred);
#else
  uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
  int n = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
#endif
}
__device__ static inline void nd_cp_async_commit() {
#ifdef ND_EMU
  ::nd_emu::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
// Wait until at most N committed groups of this thread are still in flight.
template <int N>
__device__ static inline void nd_cp_async_wait() {
#ifdef ND_EMU
  ::nd_emu::cp_async_wait(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}
