// SGD with momentum (Nesterov optional) and masked weight decay, and the SWA running average, over the flat
// fp32 parameter vector on the device. Mirrors crates/nndet-core/src/cpu/optim.rs (torch.optim.SGD, torch
// 1.13 single-tensor path, dampening 0; swa_utils.AveragedModel's default avg_fn) BIT FOR BIT:
//   d = fma(wd, p, g)            where mask != 0 and wd != 0        (Rust mul_add = fmaf)
//   b = b*mu + d                 two roundings (Rust has no contraction: __fmul_rn keeps nvcc from fusing)
//   d = nesterov ? fma(mu, b, d) : b
//   p = fma(-lr, d, p)
//   avg = n_averaged == 0 ? p : avg + (p - avg) / k      (k = n_averaged + 1 as f32, computed on the host;
//                                                        IEEE division: no -use_fast_math in build.rs)
// Shapes: params, grads, momentum, avg [P] fp32, mask [P] bytes. Memory-bound: 16-byte loads (V = 4) when
// every pointer allows (mask 4-byte aligned), else one element per thread.
#include "engine.cuh"

namespace {

#define NT 256

struct NdSgd {
  float lr, mu, wd;
  int32_t nesterov;
};

__device__ __forceinline__ float sgd_one(const NdSgd& h, float& p, float g, float b, uint8_t m) {
  float d = g;
  if (h.wd != 0.0f && m != 0) d = fmaf(h.wd, p, d);
  if (h.mu != 0.0f) {
    b = nd_mul_rn(b, h.mu) + d;
    d = h.nesterov ? fmaf(h.mu, b, d) : b;
  }
  p = fmaf(-h.lr, d, p);
  return b;
}

template <int V>
__global__ void __launch_bounds__(NT) sgd_k(float* __restrict__ p, const float* __restrict__ g,
                                           float* __restrict__ b, const uint8_t* __restrict__ mask, int64_t n,
                                           NdSgd h) {
  const int64_t nv = n / V;
  #pragma unroll 4
  for (int64_t q = nd_gtid(); q < nv; q += nd_gstride()) {
    const int64_t i = q * V;
    nd_vec<float, V> pv = nd_ld<float, V>(p + i), bv = nd_ld<float, V>(b + i);
    const nd_vec<float, V> gv = nd_ld<float, V>(g + i);
    const nd_vec<uint8_t, V> mv = nd_ld<uint8_t, V>(mask + i);
#pragma unroll
    for (int j = 0; j < V; j++) bv.v[j] = sgd_one(h, pv.v[j], gv.v[j], bv.v[j], mv.v[j]);
    nd_st<float, V>(p + i, pv);
    if (h.mu != 0.0f) nd_st<float, V>(b + i, bv);
  }
  for (int64_t i = nv * V + nd_gtid(); i < n; i += nd_gstride()) {
    float pi = p[i];
    const float bi = sgd_one(h, pi, g[i], b[i], mask[i]);
    p[i] = pi;
    if (h.mu != 0.0f) b[i] = bi;
  }
}

template <int V>
__global__ void __launch_bounds__(NT) average_k(float* __restrict__ avg, const float* __restrict__ p, int64_t n, float k,
                                               int first) {
  const int64_t nv = n / V;
  #pragma unroll 4
  for (int64_t q = nd_gtid(); q < nv; q += nd_gstride()) {
    const int64_t i = q * V;
    nd_vec<float, V> a = nd_ld<float, V>(avg + i);
    const nd_vec<float, V> pv = nd_ld<float, V>(p + i);
#pragma unroll
    for (int j = 0; j < V; j++) a.v[j] = first ? pv.v[j] : a.v[j] + (pv.v[j] - a.v[j]) / k;
    nd_st<float, V>(avg + i, a);
  }
  for (int64_t i = nv * V + nd_gtid(); i < n; i += nd_gstride()) avg[i] = first ? p[i] : avg[i] + (p[i] - avg[i]) / k;
}

}  // namespace

// vec: 4 or 1 (the wrapper checks alignment).
NDK_EXPORT int NDK(sgd_step)(float* params, const float* grads, float* momentum, const uint8_t* mask, int64_t n,
                             const NdSgd* h, int vec, void* stream) {
  if (vec == 4) {
    ND_LAUNCH(sgd_k<4>, nd_grid_for(n / 4 + 1), NT, 0, stream, params, grads, momentum, mask, n, *h);
  } else {
    ND_LAUNCH(sgd_k<1>, nd_grid_for(n), NT, 0, stream, params, grads, momentum, mask, n, *h);
  }
  NDK_LAUNCHED();
  return 0;
}

// k = (n_averaged + 1) as f32 and first = (n_averaged == 0), from the host.
NDK_EXPORT int NDK(average_update)(float* avg, const float* params, int64_t n, float k, int first, int vec,
                                   void* stream) {
  if (vec == 4) {
    ND_LAUNCH(average_k<4>, nd_grid_for(n / 4 + 1), NT, 0, stream, avg, params, n, k, first);
  } else {
    ND_LAUNCH(average_k<1>, nd_grid_for(n), NT, 0, stream, avg, params, n, k, first);
  }
  NDK_LAUNCHED();
  return 0;
}
