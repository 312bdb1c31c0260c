// Device helpers shared by the engine family's kernels (cuda/engine.cu, engine_norm.cu, optim.cu):
// aligned vectors of bf16 / fp32 for 16-byte loads, the fused activations, a non-contractible multiply,
// grid-stride indexing and a deterministic block reduction of doubles.
#pragma once
#include "common.cuh"

// NOTE: everything here has internal linkage (anonymous namespace): other families' files may use the same
// names, and all .cu objects end in one library.
namespace {

// V consecutive elements as one aligned load/store (PyTorch's aligned_vector pattern: with V*sizeof(T) = 16
// nvcc emits one LDG.128/STG.128). Callers guarantee the alignment (the Rust wrappers pick V).
template <typename T, int V>
struct alignas(sizeof(T) * V) nd_vec {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ nd_vec<T, V> nd_ld(const T* p) {
  return *reinterpret_cast<const nd_vec<T, V>*>(p);
}
template <typename T, int V>
__device__ __forceinline__ void nd_st(T* p, const nd_vec<T, V>& x) {
  *reinterpret_cast<nd_vec<T, V>*>(p) = x;
}

// a*b rounded on its own, never fused into a following add: the CPU kernels (Rust, no contraction) compute
// `a*b + c` with two roundings, and the SGD step must match them bit for bit.
// NOTE: nvcc would contract a plain a*b + c into one fma; __fmul_rn is never contracted. The emulator's host
// compiler may contract too (-ffp-contract=fast), so it goes through a volatile.
__device__ __forceinline__ float nd_mul_rn(float a, float b) {
#ifdef ND_EMU
  volatile float t = a * b;
  return t;
#else
  return __fmul_rn(a, b);
#endif
}

// Activation codes as ops/engine.rs act_of: 0 none, 1 ReLU, 2 LeakyReLU(slope).
__device__ __forceinline__ float nd_act_fwd(float v, int act, float slope) {
  if (act == 0 || v > 0.0f) return v;
  return act == 1 ? 0.0f : nd_mul_rn(v, slope);
}
// Gradient through the activation from its output (or pre-activation: same sign) y.
__device__ __forceinline__ float nd_act_bwd(float dy, float y, int act, float slope) {
  if (act == 0 || y > 0.0f) return dy;
  return act == 1 ? 0.0f : nd_mul_rn(dy, slope);
}

__device__ __forceinline__ int64_t nd_gtid() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t nd_gstride() { return (int64_t)gridDim.x * blockDim.x; }

// Sum of `a` and `b` over the block (blockDim.x = ND_RED_THREADS), fixed tree order (deterministic);
// the result is valid in every thread. Doubles go through shared memory (no 64-bit shuffles needed);
// ra/rb are the calling kernel's __shared__ arrays of ND_RED_THREADS doubles.
#define ND_RED_THREADS 256
__device__ __forceinline__ void nd_block_sum2(double& a, double& b, double* ra, double* rb) {
  const int t = threadIdx.x;
  ra[t] = a;
  rb[t] = b;
  __syncthreads();
#pragma unroll
  for (int s = ND_RED_THREADS / 2; s > 0; s >>= 1) {
    if (t < s) {
      ra[t] += ra[t + s];
      rb[t] += rb[t + s];
    }
    __syncthreads();
  }
  a = ra[0];
  b = rb[0];
}

// Grid size of a grid-stride loop over `work` items with 256-thread blocks: enough blocks to fill any
// sm_80/sm_90 part several times over (132 SMs x 8 resident blocks), never more than the work needs.
static inline unsigned nd_grid_for(int64_t work) {
  int64_t b = (work + 255) / 256;
  if (b < 1) b = 1;
  if (b > 4096) b = 4096;
  return (unsigned)b;
}

}  // namespace
