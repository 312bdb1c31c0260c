// Elementwise layers and conversions of the training engine on the device: ReLU / LeakyReLU forward and
// backward, add, the learnable scalar scale (forward on fp32 rows or bf16, backward with its reduction), the
// head permute between the conv output (bf16 NDHWC [n][s][c]) and fp32 rows [n][y_off + s*C + c], and the
// layout/dtype conversions around the network (NCDHW fp32 <-> NDHWC bf16, fp32 <-> bf16, fill).
// Mirrors crates/nndet-core/src/cpu/act.rs (same in-place and acc rules); wrappers in src/cuda/engine.rs.
//
// All are memory-bound grid-stride loops. `V` = 16 bytes of elements per thread load (8 bf16 / 4 fp32) where
// every pointer is 16-byte aligned (the wrapper checks), else 1; a tail of n % V elements goes one by one.
#include "engine.cuh"

namespace {

#define NT 256

// An elementwise op is a functor with `template <int W> run(i)` handling elements [i, i + W); ew_k runs it
// over [0, n) in runs of V, then the tail with W = 1.
template <int V, typename Op>
__global__ void __launch_bounds__(NT) ew_k(Op op, int64_t n) {
  const int64_t nv = n / V;
  #pragma unroll 4
  for (int64_t q = nd_gtid(); q < nv; q += nd_gstride()) op.template run<V>(q * V);
  for (int64_t i = nv * V + nd_gtid(); i < n; i += nd_gstride()) op.template run<1>(i);
}

// W floats from/to p through 16-byte pieces when W is a multiple of 4 (p 16-byte aligned then).
template <int W>
struct nd_f32s {
  float v[W];
};
template <int W>
__device__ __forceinline__ nd_f32s<W> nd_ldf(const float* p) {
  nd_f32s<W> r;
  if constexpr (W % 4 == 0) {
#pragma unroll
    for (int k = 0; k < W / 4; k++) {
      const nd_vec<float, 4> q = nd_ld<float, 4>(p + 4 * k);
#pragma unroll
      for (int j = 0; j < 4; j++) r.v[4 * k + j] = q.v[j];
    }
  } else {
#pragma unroll
    for (int j = 0; j < W; j++) r.v[j] = p[j];
  }
  return r;
}
template <int W>
__device__ __forceinline__ void nd_stf(float* p, const nd_f32s<W>& r) {
  if constexpr (W % 4 == 0) {
#pragma unroll
    for (int k = 0; k < W / 4; k++) {
      nd_vec<float, 4> q;
#pragma unroll
      for (int j = 0; j < 4; j++) q.v[j] = r.v[4 * k + j];
      nd_st<float, 4>(p + 4 * k, q);
    }
  } else {
#pragma unroll
    for (int j = 0; j < W; j++) p[j] = r.v[j];
  }
}

// y = act(x); y may be x.
struct ActFwd {
  const nd_bf16* x;
  nd_bf16* y;
  int act;
  float slope;
  template <int W>
  __device__ __forceinline__ void run(int64_t i) const {
    nd_vec<nd_bf16, W> v = nd_ld<nd_bf16, W>(x + i);
#pragma unroll
    for (int j = 0; j < W; j++) v.v[j] = nd_f2bf(nd_act_fwd(nd_bf2f(v.v[j]), act, slope));
    nd_st<nd_bf16, W>(y + i, v);
  }
};

// dx (+)= act'(y) * dy; dx may be dy when !acc.
struct ActBwd {
  const nd_bf16* y;
  const nd_bf16* dy;
  nd_bf16* dx;
  int act, acc;
  float slope;
  template <int W>
  __device__ __forceinline__ void run(int64_t i) const {
    const nd_vec<nd_bf16, W> yv = nd_ld<nd_bf16, W>(y + i);
    const nd_vec<nd_bf16, W> gv = nd_ld<nd_bf16, W>(dy + i);
    nd_vec<nd_bf16, W> o;
    if (acc) o = nd_ld<nd_bf16, W>(dx + i);
#pragma unroll
    for (int j = 0; j < W; j++) {
      const float r = nd_act_bwd(nd_bf2f(gv.v[j]), nd_bf2f(yv.v[j]), act, slope);
      o.v[j] = nd_f2bf(acc ? nd_bf2f(o.v[j]) + r : r);
    }
    nd_st<nd_bf16, W>(dx + i, o);
  }
};

// y = a + b; y may be a or b.
struct Add {
  const nd_bf16* a;
  const nd_bf16* b;
  nd_bf16* y;
  template <int W>
  __device__ __forceinline__ void run(int64_t i) const {
    const nd_vec<nd_bf16, W> av = nd_ld<nd_bf16, W>(a + i);
    const nd_vec<nd_bf16, W> bv = nd_ld<nd_bf16, W>(b + i);
    nd_vec<nd_bf16, W> o;
#pragma unroll
    for (int j = 0; j < W; j++) o.v[j] = nd_f2bf(nd_bf2f(av.v[j]) + nd_bf2f(bv.v[j]));
    nd_st<nd_bf16, W>(y + i, o);
  }
};

// y = x * scale[0] over fp32 (the permuted regression rows; y may be x). The scale is a device fp32 scalar
// (an entry of the flat parameter vector), read through the read-only cache.
struct ScaleF32 {
  const float* x;
  float* y;
  const float* scale;
  template <int W>
  __device__ __forceinline__ void run(int64_t i) const {
    const float s = __ldg(scale);
    nd_f32s<W> v = nd_ldf<W>(x + i);
#pragma unroll
    for (int j = 0; j < W; j++) v.v[j] *= s;
    nd_stf<W>(y + i, v);
  }
};

struct ScaleBf16 {
  const nd_bf16* x;
  nd_bf16* y;
  const float* scale;
  template <int W>
  __device__ __forceinline__ void run(int64_t i) const {
    const float s = __ldg(scale);
    nd_vec<nd_bf16, W> v = nd_ld<nd_bf16, W>(x + i);
#pragma unroll
    for (int j = 0; j < W; j++) v.v[j] = nd_f2bf(nd_bf2f(v.v[j]) * s);
    nd_st<nd_bf16, W>(y + i, v);
  }
};

// fp32 -> bf16 (round to nearest even) and back.
struct F32ToBf16 {
  const float* x;
  nd_bf16* y;
  template <int W>
  __device__ __forceinline__ void run(int64_t i) const {
    const nd_f32s<W> a = nd_ldf<W>(x + i);
    nd_vec<nd_bf16, W> o;
#pragma unroll
    for (int j = 0; j < W; j++) o.v[j] = nd_f2bf(a.v[j]);
    nd_st<nd_bf16, W>(y + i, o);
  }
};

struct Bf16ToF32 {
  const nd_bf16* x;
  float* y;
  template <int W>
  __device__ __forceinline__ void run(int64_t i) const {
    const nd_vec<nd_bf16, W> v = nd_ld<nd_bf16, W>(x + i);
    nd_f32s<W> o;
#pragma unroll
    for (int j = 0; j < W; j++) o.v[j] = nd_bf2f(v.v[j]);
    nd_stf<W>(y + i, o);
  }
};

// Scale backward pass 1: dx (+)= dy*scale (dx may be dy when !acc: read before written by the same thread)
// and per block sum(dy*x) (fp32 per thread, double across the block) -> part[blockIdx.x].
template <int V>
__global__ void __launch_bounds__(NT) scale_bwd_k(const nd_bf16* __restrict__ x, const nd_bf16* dy,
                                                 const float* __restrict__ scale, nd_bf16* dx, int64_t n, int acc,
                                                 double* __restrict__ part) {
  __shared__ double ra[NT], rb[NT];
  const float s = __ldg(scale);
  float dot = 0.0f;
  const int64_t nv = n / V;
  #pragma unroll 4
  for (int64_t q = nd_gtid(); q < nv; q += nd_gstride()) {
    const nd_vec<nd_bf16, V> xv = nd_ld<nd_bf16, V>(x + q * V);
    const nd_vec<nd_bf16, V> gv = nd_ld<nd_bf16, V>(dy + q * V);
    nd_vec<nd_bf16, V> o;
    if (acc) o = nd_ld<nd_bf16, V>(dx + q * V);
#pragma unroll
    for (int j = 0; j < V; j++) {
      const float gf = nd_bf2f(gv.v[j]);
      dot = fmaf(gf, nd_bf2f(xv.v[j]), dot);
      const float r = gf * s;
      o.v[j] = nd_f2bf(acc ? nd_bf2f(o.v[j]) + r : r);
    }
    nd_st<nd_bf16, V>(dx + q * V, o);
  }
  for (int64_t i = nv * V + nd_gtid(); i < n; i += nd_gstride()) {
    const float gf = nd_bf2f(dy[i]);
    dot = fmaf(gf, nd_bf2f(x[i]), dot);
    const float r = gf * s;
    dx[i] = nd_f2bf(acc ? nd_bf2f(dx[i]) + r : r);
  }
  double a = dot, b = 0.0;
  nd_block_sum2(a, b, ra, rb);
  if (threadIdx.x == 0) part[blockIdx.x] = a;
}

// Scale backward pass 2 (one block): dscale (+)= sum of the block partials, fixed order.
__global__ void __launch_bounds__(NT) scale_bwd_finish_k(const double* __restrict__ part, int nparts,
                                                        float* __restrict__ dscale, int acc) {
  __shared__ double ra[NT], rb[NT];
  double a = 0.0, b = 0.0;
  for (int i = threadIdx.x; i < nparts; i += NT) a += part[i];
  nd_block_sum2(a, b, ra, rb);
  if (threadIdx.x == 0) dscale[0] = acc ? dscale[0] + (float)a : (float)a;
}

// Head permute geometry, mirrors engine.rs PermuteGeom: x [n][s][c] bf16 <-> y[n*y_stride + y_off + s*c + c'].
struct NdPermGeom {
  int64_t s, y_stride, y_off;
  int32_t n, c, acc, pad_;
};

// Forward: per image a contiguous convert-copy of s*c values (grid.y = image), y (+)= x.
// NOTE: scalar but coalesced (2-byte loads, 4-byte stores): the rows' offsets have any alignment, and the
// head outputs are small next to the trunk's activations.
__global__ void __launch_bounds__(NT) permute_fwd_k(const nd_bf16* __restrict__ x, float* __restrict__ y,
                                                   NdPermGeom g) {
  const int64_t m = g.s * g.c;
  const nd_bf16* xs = x + (int64_t)blockIdx.y * m;
  float* ys = y + (int64_t)blockIdx.y * g.y_stride + g.y_off;
  for (int64_t i = nd_gtid(); i < m; i += nd_gstride()) {
    const float v = nd_bf2f(xs[i]);
    ys[i] = g.acc ? ys[i] + v : v;
  }
}

// Backward: dx (+)= bf16(dy) per image.
__global__ void __launch_bounds__(NT) permute_bwd_k(const float* __restrict__ dy, nd_bf16* __restrict__ dx,
                                                   NdPermGeom g) {
  const int64_t m = g.s * g.c;
  const float* ds = dy + (int64_t)blockIdx.y * g.y_stride + g.y_off;
  nd_bf16* xs = dx + (int64_t)blockIdx.y * m;
  for (int64_t i = nd_gtid(); i < m; i += nd_gstride()) xs[i] = nd_f2bf(g.acc ? nd_bf2f(xs[i]) + ds[i] : ds[i]);
}

// Fill n 16- or 32-bit words with `bits` (zero: bits = 0).
__global__ void __launch_bounds__(NT) fill32_k(uint32_t* p, int64_t n, uint32_t bits) {
  for (int64_t i = nd_gtid(); i < n; i += nd_gstride()) p[i] = bits;
}
__global__ void __launch_bounds__(NT) fill16_k(uint16_t* p, int64_t n, uint32_t bits) {
  for (int64_t i = nd_gtid(); i < n; i += nd_gstride()) p[i] = (uint16_t)bits;
}

// NCDHW fp32 [n][c][s] -> NDHWC bf16 [n][s][c] (and back): 32x32 tiles through shared memory so both the
// reads and the writes are coalesced; block (32, 8), grid (s tiles, c tiles, n).
__global__ void __launch_bounds__(NT) ncs_to_nsc_k(const float* __restrict__ x, nd_bf16* __restrict__ y, int c,
                                                  int64_t s) {
  __shared__ float tile[32][33];
  const int64_t s0 = (int64_t)blockIdx.x * 32;
  const int c0 = blockIdx.y * 32, tx = threadIdx.x, ty = threadIdx.y;
  const int64_t img = (int64_t)blockIdx.z * c * s;
  for (int k = ty; k < 32; k += 8)
    if (c0 + k < c && s0 + tx < s) tile[k][tx] = x[img + (int64_t)(c0 + k) * s + s0 + tx];
  __syncthreads();
  for (int k = ty; k < 32; k += 8)
    if (s0 + k < s && c0 + tx < c) y[img + (s0 + k) * c + c0 + tx] = nd_f2bf(tile[tx][k]);
}

__global__ void __launch_bounds__(NT) nsc_to_ncs_k(const nd_bf16* __restrict__ x, float* __restrict__ y, int c,
                                                  int64_t s) {
  __shared__ float tile[32][33];
  const int64_t s0 = (int64_t)blockIdx.x * 32;
  const int c0 = blockIdx.y * 32, tx = threadIdx.x, ty = threadIdx.y;
  const int64_t img = (int64_t)blockIdx.z * c * s;
  for (int k = ty; k < 32; k += 8)
    if (s0 + k < s && c0 + tx < c) tile[k][tx] = nd_bf2f(x[img + (s0 + k) * c + c0 + tx]);
  __syncthreads();
  for (int k = ty; k < 32; k += 8)
    if (c0 + k < c && s0 + tx < s) y[img + (int64_t)(c0 + k) * s + s0 + tx] = tile[tx][k];
}

}  // namespace

// ---- launchers: `vec` is the run length V (8 for bf16, 4 for fp32 data: 16 bytes) when every pointer is
// 16-byte aligned, else 1; the wrapper chooses it ----

template <typename Op>
static int ew_launch(Op op, int64_t n, int vec, void* stream) {
  if (vec == 8) {
    auto k = ew_k<8, Op>;
    ND_LAUNCH(k, nd_grid_for(n / 8 + 1), NT, 0, stream, op, n);
  } else if (vec == 4) {
    auto k = ew_k<4, Op>;
    ND_LAUNCH(k, nd_grid_for(n / 4 + 1), NT, 0, stream, op, n);
  } else {
    auto k = ew_k<1, Op>;
    ND_LAUNCH(k, nd_grid_for(n), NT, 0, stream, op, n);
  }
  NDK_LAUNCHED();
  return 0;
}

NDK_EXPORT int NDK(act_fwd)(const nd_bf16* x, nd_bf16* y, int64_t n, int act, float slope, int vec, void* stream) {
  return ew_launch(ActFwd{x, y, act, slope}, n, vec, stream);
}

NDK_EXPORT int NDK(act_bwd)(const nd_bf16* y, const nd_bf16* dy, nd_bf16* dx, int64_t n, int act, float slope,
                            int acc, int vec, void* stream) {
  return ew_launch(ActBwd{y, dy, dx, act, acc, slope}, n, vec, stream);
}

NDK_EXPORT int NDK(add)(const nd_bf16* a, const nd_bf16* b, nd_bf16* y, int64_t n, int vec, void* stream) {
  return ew_launch(Add{a, b, y}, n, vec, stream);
}

NDK_EXPORT int NDK(scale_fwd_f32)(const float* x, const float* scale, float* y, int64_t n, int vec, void* stream) {
  return ew_launch(ScaleF32{x, y, scale}, n, vec, stream);
}

NDK_EXPORT int NDK(scale_fwd_bf16)(const nd_bf16* x, const float* scale, nd_bf16* y, int64_t n, int vec,
                                   void* stream) {
  return ew_launch(ScaleBf16{x, y, scale}, n, vec, stream);
}

// ws: ND_SCALE_PARTS doubles (engine.rs SCALE_WS_BYTES).
#define ND_SCALE_PARTS 1024
NDK_EXPORT int NDK(scale_bwd)(const nd_bf16* x, const nd_bf16* dy, const float* scale, nd_bf16* dx, float* dscale,
                              int64_t n, int acc_dx, int acc_ds, int vec, double* ws, void* stream) {
  unsigned blocks = nd_grid_for(vec == 8 ? n / 8 + 1 : n);
  if (blocks > ND_SCALE_PARTS) blocks = ND_SCALE_PARTS;
  if (vec == 8) {
    ND_LAUNCH(scale_bwd_k<8>, blocks, NT, 0, stream, x, dy, scale, dx, n, acc_dx, ws);
  } else {
    ND_LAUNCH(scale_bwd_k<1>, blocks, NT, 0, stream, x, dy, scale, dx, n, acc_dx, ws);
  }
  NDK_LAUNCHED();
  ND_LAUNCH(scale_bwd_finish_k, 1, NT, 0, stream, ws, (int)blocks, dscale, acc_ds);
  NDK_LAUNCHED();
  return 0;
}

NDK_EXPORT int NDK(permute_fwd)(const nd_bf16* x, float* y, const NdPermGeom* p, void* stream) {
  const NdPermGeom g = *p;
  const dim3 grid(nd_grid_for(g.s * g.c), (unsigned)g.n);
  ND_LAUNCH(permute_fwd_k, grid, NT, 0, stream, x, y, g);
  NDK_LAUNCHED();
  return 0;
}

NDK_EXPORT int NDK(permute_bwd)(const float* dy, nd_bf16* dx, const NdPermGeom* p, void* stream) {
  const NdPermGeom g = *p;
  const dim3 grid(nd_grid_for(g.s * g.c), (unsigned)g.n);
  ND_LAUNCH(permute_bwd_k, grid, NT, 0, stream, dy, dx, g);
  NDK_LAUNCHED();
  return 0;
}

NDK_EXPORT int NDK(f32_to_bf16)(const float* x, nd_bf16* y, int64_t n, int vec, void* stream) {
  return ew_launch(F32ToBf16{x, y}, n, vec, stream);
}

NDK_EXPORT int NDK(bf16_to_f32)(const nd_bf16* x, float* y, int64_t n, int vec, void* stream) {
  return ew_launch(Bf16ToF32{x, y}, n, vec, stream);
}

// word: 2 or 4 bytes.
NDK_EXPORT int NDK(fill)(void* p, int64_t n, int word, uint32_t bits, void* stream) {
  if (word == 2) {
    ND_LAUNCH(fill16_k, nd_grid_for(n), NT, 0, stream, (uint16_t*)p, n, bits);
  } else {
    ND_LAUNCH(fill32_k, nd_grid_for(n), NT, 0, stream, (uint32_t*)p, n, bits);
  }
  NDK_LAUNCHED();
  return 0;
}

// NCDHW fp32 <-> NDHWC bf16 of n images of c channels and s positions.
// NOTE: with c == 1 both layouts are the same array: a flat conversion (the CT input upload).
NDK_EXPORT int NDK(ncs_to_nsc)(const float* x, nd_bf16* y, int n, int c, int64_t s, void* stream) {
  if (c == 1) return ew_launch(F32ToBf16{x, y}, (int64_t)n * s, 1, stream);
  const dim3 grid((unsigned)((s + 31) / 32), (unsigned)((c + 31) / 32), (unsigned)n);
  ND_LAUNCH(ncs_to_nsc_k, grid, dim3(32, 8), 0, stream, x, y, c, s);
  NDK_LAUNCHED();
  return 0;
}

NDK_EXPORT int NDK(nsc_to_ncs)(const nd_bf16* x, float* y, int n, int c, int64_t s, void* stream) {
  if (c == 1) return ew_launch(Bf16ToF32{x, y}, (int64_t)n * s, 1, stream);
  const dim3 grid((unsigned)((s + 31) / 32), (unsigned)((c + 31) / 32), (unsigned)n);
  ND_LAUNCH(nsc_to_ncs_k, grid, dim3(32, 8), 0, stream, x, y, c, s);
  NDK_LAUNCHED();
  return 0;
}
