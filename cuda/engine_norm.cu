// Group / instance normalisation with a fused activation, forward and backward, on bf16 NDHWC activations
// with fp32 statistics and parameters. Mirrors crates/nndet-core/src/cpu/norm.rs (same eps, same shifted
// one-pass variance, same backward formula, dx may overwrite x); wrappers in src/cuda/engine.rs.
//
// Shapes: x, y, dy, dx [N][S][C] bf16 (S = D*H*W); gamma, beta, dgamma, dbeta [C] fp32; mean, rstd [N*G]
// fp32. A group is C/G consecutive channels (G = C: InstanceNorm3d; G = C/16: GroupNorm).
//
// Each direction is three kernels, no atomics, deterministic:
//  1. partial sums per (n, chunk of positions, channel): a block reads whole rows of C channels (16-byte
//     loads, fully coalesced), each thread owns V = 8 channels and ~64 elements, a shared-memory tree
//     adds the rows; written to the workspace as float2 [N][chunks][C];
//  2. a tiny finalize kernel reduces the partials of one (n, g) (and, backward, of one channel over n) in
//     double;
//  3. a pass applying the per-channel affine map (+ activation) with the same tiling.
// Traffic: forward reads x twice and writes y (6 B/element), backward reads x, dy twice and writes dx
// (10 B/element); all memory-bound, expected near full bandwidth when chunks * N fills the GPU (the Rust
// plan gives 1024 chunks per image for the large early-stage volumes) and the row loops, unrolled by 4,
// keep several 16-byte loads in flight per thread.
#include "engine.cuh"

namespace {

// Mirrors engine.rs NormGeom (repr(C)); the Rust wrapper fills the plan (vec, chunks, rows).
struct NdNormGeom {
  int64_t s;       // D*H*W
  int32_t n, c, groups;
  int32_t act;     // 0 none, 1 ReLU, 2 LeakyReLU(slope)
  int32_t acc_dx;  // backward: add into dx
  int32_t acc_dp;  // backward: add into dgamma/dbeta
  int32_t vec;     // channels per thread load: 8 (C % 8 == 0 and 16-byte aligned buffers) or 1
  int32_t chunks;  // position chunks per image (grid.x)
  int32_t rows;    // positions per chunk (a multiple of the rows a block has in flight)
  float eps, slope;
};

#define NT 256

// The tiling every pass shares: a block covers `ct` channel vectors x `R` rows at a time.
struct Tile {
  int nv, ct, R, r, cvg;
  bool active;
  __device__ Tile(int c, int V) {
    nv = c / V;
    ct = nv < NT ? nv : NT;
    R = NT / ct;
    r = threadIdx.x / ct;
    cvg = blockIdx.y * ct + threadIdx.x % ct;
    active = r < R && cvg < nv;
  }
};

// Tree-add the per-thread partials of the block's R rows (sh1/sh2: [V][NT]); the row-0 threads end with
// the block's sums of their channels.
template <int V>
__device__ __forceinline__ void rows_sum(const Tile& tl, float (&a)[V], float (&b)[V], float* sh1, float* sh2) {
  const int t = threadIdx.x;
#pragma unroll
  for (int j = 0; j < V; j++) {
    sh1[j * NT + t] = a[j];
    sh2[j * NT + t] = b[j];
  }
  __syncthreads();
  int p = 1;
  while (p < tl.R) p <<= 1;
  for (int step = p >> 1; step > 0; step >>= 1) {
    if (tl.r < step && tl.r + step < tl.R) {
      const int o = t + step * tl.ct;
#pragma unroll
      for (int j = 0; j < V; j++) {
        sh1[j * NT + t] += sh1[j * NT + o];
        sh2[j * NT + t] += sh2[j * NT + o];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < V; j++) {
    a[j] = sh1[j * NT + t];
    b[j] = sh2[j * NT + t];
  }
}

// Forward pass 1: per channel, sum(x - k) and sum((x - k)^2) with k the first value of the channel's group
// (x[n, s=0, g*cpg], cpu/norm.rs's shift: keeps the one-pass variance exact when |mean| >> spread).
template <int V>
__global__ void __launch_bounds__(NT) norm_fwd_stats_k(const nd_bf16* __restrict__ x, float* __restrict__ part,
                                                      NdNormGeom g) {
  __shared__ float sh1[V * NT], sh2[V * NT];
  const Tile tl(g.c, V);
  const int n = blockIdx.z, cpg = g.c / g.groups;
  const int64_t img = (int64_t)n * g.s * g.c;
  float a[V], b[V], k[V];
#pragma unroll
  for (int j = 0; j < V; j++) a[j] = b[j] = k[j] = 0.0f;
  const int64_t s0 = (int64_t)blockIdx.x * g.rows;
  const int64_t s1 = s0 + g.rows < g.s ? s0 + g.rows : g.s;
  if (tl.active) {
#pragma unroll
    for (int j = 0; j < V; j++) k[j] = nd_bf2f(x[img + (int64_t)((tl.cvg * V + j) / cpg) * cpg]);
    const nd_bf16* xp = x + img + (int64_t)tl.cvg * V;
    #pragma unroll 4
    for (int64_t s = s0 + tl.r; s < s1; s += tl.R) {
      const nd_vec<nd_bf16, V> v = nd_ld<nd_bf16, V>(xp + s * g.c);
#pragma unroll
      for (int j = 0; j < V; j++) {
        const float d = nd_bf2f(v.v[j]) - k[j];
        a[j] += d;
        b[j] = fmaf(d, d, b[j]);
      }
    }
  }
  rows_sum<V>(tl, a, b, sh1, sh2);
  if (tl.active && tl.r == 0) {
    float* o = part + (((int64_t)n * g.chunks + blockIdx.x) * g.c + (int64_t)tl.cvg * V) * 2;
#pragma unroll
    for (int j = 0; j < V; j++) {
      o[2 * j] = a[j];
      o[2 * j + 1] = b[j];
    }
  }
}

// Forward pass 2: one block per (n, g): mean and rstd from the partials, in double as the CPU.
__global__ void __launch_bounds__(NT) norm_fwd_finalize_k(const float* __restrict__ part,
                                                         const nd_bf16* __restrict__ x, float* __restrict__ mean,
                                                         float* __restrict__ rstd, NdNormGeom g) {
  __shared__ double ra[NT], rb[NT];
  const int ng = blockIdx.x, n = ng / g.groups, gi = ng % g.groups, cpg = g.c / g.groups;
  double a = 0.0, b = 0.0;
  const int64_t items = (int64_t)g.chunks * cpg;
  for (int64_t i = threadIdx.x; i < items; i += NT) {
    const int64_t ch = i / cpg, c = (int64_t)gi * cpg + i % cpg;
    const float* p = part + (((int64_t)n * g.chunks + ch) * g.c + c) * 2;
    a += (double)p[0];
    b += (double)p[1];
  }
  nd_block_sum2(a, b, ra, rb);
  if (threadIdx.x == 0) {
    const double m = (double)cpg * (double)g.s;
    const double d = a / m;
    double var = b / m - d * d;
    if (var < 0.0) var = 0.0;
    const float k = nd_bf2f(x[(int64_t)n * g.s * g.c + (int64_t)gi * cpg]);
    mean[ng] = (float)((double)k + d);
    rstd[ng] = (float)(1.0 / sqrt(var + (double)g.eps));
  }
}

// The per-channel affine map of channel c: y = act(x*a + b), a = rstd*gamma, b = beta - mean*a (torch's).
__device__ __forceinline__ void affine_of(const NdNormGeom& g, int n, int c, const float* gamma, const float* beta,
                                          const float* mean, const float* rstd, float& a, float& b, float& mu) {
  const int ng = n * g.groups + c / (g.c / g.groups);
  mu = mean[ng];
  a = nd_mul_rn(rstd[ng], gamma[c]);
  b = beta[c] - nd_mul_rn(mu, a);
}

// Forward pass 3: y = act(x*a_c + b_c) (y may be x).
template <int V>
__global__ void __launch_bounds__(NT) norm_fwd_apply_k(const nd_bf16* x, const float* __restrict__ gamma,
                                                      const float* __restrict__ beta, const float* __restrict__ mean,
                                                      const float* __restrict__ rstd, nd_bf16* y, NdNormGeom g) {
  const Tile tl(g.c, V);
  if (!tl.active) return;
  const int n = blockIdx.z;
  float a[V], b[V], mu;
#pragma unroll
  for (int j = 0; j < V; j++) affine_of(g, n, tl.cvg * V + j, gamma, beta, mean, rstd, a[j], b[j], mu);
  const int64_t off = (int64_t)n * g.s * g.c + (int64_t)tl.cvg * V;
  const int64_t s0 = (int64_t)blockIdx.x * g.rows;
  const int64_t s1 = s0 + g.rows < g.s ? s0 + g.rows : g.s;
  #pragma unroll 4
  for (int64_t s = s0 + tl.r; s < s1; s += tl.R) {
    nd_vec<nd_bf16, V> v = nd_ld<nd_bf16, V>(x + off + s * g.c);
#pragma unroll
    for (int j = 0; j < V; j++) v.v[j] = nd_f2bf(nd_act_fwd(nd_mul_rn(nd_bf2f(v.v[j]), a[j]) + b[j], g.act, g.slope));
    nd_st<nd_bf16, V>(y + off + s * g.c, v);
  }
}

// Backward pass 1: per channel, sum(gr) and sum(gr * (x - mean)) with gr = act'(x*a + b) * dy.
template <int V>
__global__ void __launch_bounds__(NT) norm_bwd_stats_k(const nd_bf16* __restrict__ x, const nd_bf16* __restrict__ dy,
                                                      const float* __restrict__ gamma, const float* __restrict__ beta,
                                                      const float* __restrict__ mean, const float* __restrict__ rstd,
                                                      float* __restrict__ part, NdNormGeom g) {
  __shared__ float sh1[V * NT], sh2[V * NT];
  const Tile tl(g.c, V);
  const int n = blockIdx.z;
  float sa[V], sb[V], a[V], b[V], mu[V];
#pragma unroll
  for (int j = 0; j < V; j++) sa[j] = sb[j] = 0.0f;
  const int64_t s0 = (int64_t)blockIdx.x * g.rows;
  const int64_t s1 = s0 + g.rows < g.s ? s0 + g.rows : g.s;
  if (tl.active) {
#pragma unroll
    for (int j = 0; j < V; j++) affine_of(g, n, tl.cvg * V + j, gamma, beta, mean, rstd, a[j], b[j], mu[j]);
    const int64_t off = (int64_t)n * g.s * g.c + (int64_t)tl.cvg * V;
    #pragma unroll 4
    for (int64_t s = s0 + tl.r; s < s1; s += tl.R) {
      const nd_vec<nd_bf16, V> xv = nd_ld<nd_bf16, V>(x + off + s * g.c);
      const nd_vec<nd_bf16, V> dv = nd_ld<nd_bf16, V>(dy + off + s * g.c);
#pragma unroll
      for (int j = 0; j < V; j++) {
        const float xf = nd_bf2f(xv.v[j]);
        const float gr = nd_act_bwd(nd_bf2f(dv.v[j]), nd_mul_rn(xf, a[j]) + b[j], g.act, g.slope);
        sa[j] += gr;
        sb[j] = fmaf(gr, xf - mu[j], sb[j]);
      }
    }
  }
  rows_sum<V>(tl, sa, sb, sh1, sh2);
  if (tl.active && tl.r == 0) {
    float* o = part + (((int64_t)n * g.chunks + blockIdx.x) * g.c + (int64_t)tl.cvg * V) * 2;
#pragma unroll
    for (int j = 0; j < V; j++) {
      o[2 * j] = sa[j];
      o[2 * j + 1] = sb[j];
    }
  }
}

// Backward pass 2: blocks [0, N*G) turn one group's sums into dx = gr*a + (x*bb + cc) coefficients
// (coef [N*G][2]); blocks [N*G, N*G + C) reduce one channel over n for dgamma/dbeta (acc_dp adds).
__global__ void __launch_bounds__(NT) norm_bwd_finalize_k(const float* __restrict__ part,
                                                         const float* __restrict__ gamma,
                                                         const float* __restrict__ mean,
                                                         const float* __restrict__ rstd, float* __restrict__ coef,
                                                         float* __restrict__ dgamma, float* __restrict__ dbeta,
                                                         NdNormGeom g) {
  __shared__ double ra[NT], rb[NT];
  const int cpg = g.c / g.groups, ngs = g.n * g.groups;
  double a = 0.0, b = 0.0;
  if ((int)blockIdx.x < ngs) {
    const int ng = blockIdx.x, n = ng / g.groups, gi = ng % g.groups;
    const int64_t items = (int64_t)g.chunks * cpg;
    for (int64_t i = threadIdx.x; i < items; i += NT) {
      const int64_t ch = i / cpg, c = (int64_t)gi * cpg + i % cpg;
      const float* p = part + (((int64_t)n * g.chunks + ch) * g.c + c) * 2;
      a += (double)p[0] * (double)gamma[c];
      b += (double)p[1] * (double)gamma[c];
    }
    nd_block_sum2(a, b, ra, rb);
    if (threadIdx.x == 0) {
      const double m = (double)cpg * (double)g.s, r = rstd[ng], mu = mean[ng];
      const double m1 = a / m, m2 = b * r / m;
      coef[2 * ng] = (float)(-r * r * m2);
      coef[2 * ng + 1] = (float)(-r * m1 + r * r * m2 * mu);
    }
  } else {
    const int c = blockIdx.x - ngs;
    const int64_t items = (int64_t)g.n * g.chunks;
    for (int64_t i = threadIdx.x; i < items; i += NT) {
      const int64_t n = i / g.chunks;
      const float* p = part + (i * g.c + c) * 2;
      b += (double)p[0];
      a += (double)p[1] * (double)rstd[n * g.groups + c / cpg];
    }
    nd_block_sum2(a, b, ra, rb);
    if (threadIdx.x == 0) {
      dgamma[c] = g.acc_dp ? dgamma[c] + (float)a : (float)a;
      dbeta[c] = g.acc_dp ? dbeta[c] + (float)b : (float)b;
    }
  }
}

// Backward pass 3: dx (+)= act'(x*a + b)*dy * a + (x*bb + cc). dx may be x (acc_dx is 0 then, as the wrapper
// checks) or dy: each element is read and then written by the same thread, so x, dy and dx carry no
// __restrict__.
template <int V>
__global__ void __launch_bounds__(NT) norm_bwd_apply_k(const nd_bf16* x, const nd_bf16* dy,
                                                      const float* __restrict__ gamma, const float* __restrict__ beta,
                                                      const float* __restrict__ mean, const float* __restrict__ rstd,
                                                      const float* __restrict__ coef, nd_bf16* dx, NdNormGeom g) {
  const Tile tl(g.c, V);
  if (!tl.active) return;
  const int n = blockIdx.z, cpg = g.c / g.groups;
  float a[V], b[V], mu, bb[V], cc[V];
#pragma unroll
  for (int j = 0; j < V; j++) {
    const int c = tl.cvg * V + j, ng = n * g.groups + c / cpg;
    affine_of(g, n, c, gamma, beta, mean, rstd, a[j], b[j], mu);
    bb[j] = coef[2 * ng];
    cc[j] = coef[2 * ng + 1];
  }
  const int64_t off = (int64_t)n * g.s * g.c + (int64_t)tl.cvg * V;
  const int64_t s0 = (int64_t)blockIdx.x * g.rows;
  const int64_t s1 = s0 + g.rows < g.s ? s0 + g.rows : g.s;
  #pragma unroll 4
  for (int64_t s = s0 + tl.r; s < s1; s += tl.R) {
    const int64_t e = off + s * g.c;
    const nd_vec<nd_bf16, V> xv = nd_ld<nd_bf16, V>(x + e);
    const nd_vec<nd_bf16, V> dv = nd_ld<nd_bf16, V>(dy + e);
    nd_vec<nd_bf16, V> o;
    if (g.acc_dx) o = nd_ld<nd_bf16, V>(dx + e);
#pragma unroll
    for (int j = 0; j < V; j++) {
      const float xf = nd_bf2f(xv.v[j]);
      const float gr = nd_act_bwd(nd_bf2f(dv.v[j]), nd_mul_rn(xf, a[j]) + b[j], g.act, g.slope);
      float r = nd_mul_rn(gr, a[j]) + (nd_mul_rn(xf, bb[j]) + cc[j]);
      if (g.acc_dx) r = nd_bf2f(o.v[j]) + r;
      o.v[j] = nd_f2bf(r);
    }
    nd_st<nd_bf16, V>(dx + e, o);
  }
}

}  // namespace

static inline dim3 tile_grid(const NdNormGeom& g) {
  const int nv = g.c / g.vec, ct = nv < NT ? nv : NT;
  return dim3((unsigned)g.chunks, (unsigned)((nv + ct - 1) / ct), (unsigned)g.n);
}

// ws: partials float2 [N][chunks][C], then (backward) coef float2 [N*G]; engine.rs norm_ws_bytes sizes it.
NDK_EXPORT int NDK(norm_fwd)(const nd_bf16* x, const float* gamma, const float* beta, nd_bf16* y, float* mean,
                             float* rstd, float* ws, const NdNormGeom* p, void* stream) {
  const NdNormGeom g = *p;
  const dim3 grid = tile_grid(g);
  if (g.vec == 8) {
    ND_LAUNCH(norm_fwd_stats_k<8>, grid, NT, 0, stream, x, ws, g);
  } else {
    ND_LAUNCH(norm_fwd_stats_k<1>, grid, NT, 0, stream, x, ws, g);
  }
  NDK_LAUNCHED();
  ND_LAUNCH(norm_fwd_finalize_k, g.n * g.groups, NT, 0, stream, ws, x, mean, rstd, g);
  NDK_LAUNCHED();
  if (g.vec == 8) {
    ND_LAUNCH(norm_fwd_apply_k<8>, grid, NT, 0, stream, x, gamma, beta, mean, rstd, y, g);
  } else {
    ND_LAUNCH(norm_fwd_apply_k<1>, grid, NT, 0, stream, x, gamma, beta, mean, rstd, y, g);
  }
  NDK_LAUNCHED();
  return 0;
}

NDK_EXPORT int NDK(norm_bwd)(const nd_bf16* x, const nd_bf16* dy, const float* gamma, const float* beta,
                             const float* mean, const float* rstd, nd_bf16* dx, float* dgamma, float* dbeta,
                             float* ws, const NdNormGeom* p, void* stream) {
  const NdNormGeom g = *p;
  const dim3 grid = tile_grid(g);
  float* coef = ws + (int64_t)g.n * g.chunks * g.c * 2;
  if (g.vec == 8) {
    ND_LAUNCH(norm_bwd_stats_k<8>, grid, NT, 0, stream, x, dy, gamma, beta, mean, rstd, ws, g);
  } else {
    ND_LAUNCH(norm_bwd_stats_k<1>, grid, NT, 0, stream, x, dy, gamma, beta, mean, rstd, ws, g);
  }
  NDK_LAUNCHED();
  ND_LAUNCH(norm_bwd_finalize_k, g.n * g.groups + g.c, NT, 0, stream, ws, gamma, mean, rstd, coef, dgamma, dbeta, g);
  NDK_LAUNCHED();
  if (g.vec == 8) {
    ND_LAUNCH(norm_bwd_apply_k<8>, grid, NT, 0, stream, x, dy, gamma, beta, mean, rstd, coef, dx, g);
  } else {
    ND_LAUNCH(norm_bwd_apply_k<1>, grid, NT, 0, stream, x, dy, gamma, beta, mean, rstd, coef, dx, g);
  }
  NDK_LAUNCHED();
  return 0;
}
