// Conv3d / ConvTranspose3d on tensor cores: the weight pack and the two data-side ops `corr` and `adj` (see
// conv.cuh for the lo/hi geometry; conv fwd = corr, conv bwd-data = adj, convT fwd = adj, convT bwd-data =
// corr). Activations bf16 NDHWC, packed weights bf16, fp32 accumulation. Mirrors cpu/conv3d/reference.rs.
//
// Both ops are one implicit GEMM, D[m][n] = sum_k A[m][k] * B[n][k]:
//   m = destination voxel, n = destination channel, k = (valid tap j, source channel c) flattened,
//   A[m][k] = src[voxel of m shifted by tap j][c] (zero outside the volume), B[n][k] = packed weight.
// corr: every tap is valid, src position = o*s + t - p.
// adj:  the destination is split into parity classes c (per axis i = q*s + c; blockIdx.z = class). Within a
//       class the taps that reach it are fixed ((c + p - t) % s == 0) and src position = q + (c + p - t)/s,
//       so a strided backward-data multiplies only the taps that exist (no 7/8 zero work at stride 2) and a
//       ConvTranspose3d (k == s) becomes one plain GEMM per tap.
// Tiles: BM = 128 voxels x BN = 64 channels x BK = 32 with 4 warps (2 x 2, warp tile 64 x 32: 16 mma per
// k16 step per warp against 4 + 2 ldmatrix.x4). NOTE: the gather's address math is per thread and tile, so
// fewer, fatter warps keep the issue slots per mma low (about 230 instructions per 32 mma per warp and
// k-tile; with 8 warps of 32 x 32 it was 210 per 16 mma, issue-bound on sm_80/90). BN = 32 / 16 with 4 warps
// of 32 x 32 / 32 x 16 for narrow outputs (Cout 2..32: first layers, seg / small heads), so little of the N
// tile is padding. 3-stage cp.async pipeline with one __syncthreads per k-tile; 46 KiB of dynamic shared
// memory (+3.8 KiB static) per block, 3-4 blocks per SM. The epilogue stages the fp32 tile in the freed
// pipeline buffers and writes 16-byte chunks of output rows (bias, accumulate and bf16 rounding fused). A 16-byte granule (8 channels) never straddles a tap when C_src % 8 == 0, so
// the fast path gathers with cp.async 16 (zero-filled outside the volume); other channel counts (the first
// layer, Cin = 1..4) gather element-wise into the same tiles (memory-bound there anyway).
#include "conv.cuh"

// ---- weight pack: w fp32 [c_lo][c_hi][taps] -> pc bf16 [c_lo][taps][c_hi] (corr's B), pa [c_hi][taps][c_lo]
// (adj's B); either may be null. Once per SGD step, reads coalesced; writes are strided but tiny.
__global__ void conv_pack_kernel(const float* __restrict__ w, nd_bf16* pc, nd_bf16* pa, int c_lo, int c_hi, int taps) {
  const long long total = (long long)c_lo * c_hi * taps;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const int t = (int)(i % taps);
    const long long r = i / taps;
    const int ch = (int)(r % c_hi), cl = (int)(r / c_hi);
    const nd_bf16 v = nd_f2bf(w[i]);
    if (pc) pc[((long long)cl * taps + t) * c_hi + ch] = v;
    if (pa) pa[((long long)ch * taps + t) * c_lo + cl] = v;
  }
}

NDK_EXPORT int NDK(conv_pack)(const float* w, nd_bf16* pc, nd_bf16* pa, const NdConvGeom* g, void* stream) {
  const int taps = g->k[0] * g->k[1] * g->k[2];
  const long long total = (long long)g->c_lo * g->c_hi * taps;
  if (total == 0 || (!pc && !pa)) return 0;
  const int blocks = (int)((total + 255) / 256 < 4096 ? (total + 255) / 256 : 4096);
  ND_LAUNCH(conv_pack_kernel, blocks, 256, 0, stream, w, pc, pa, g->c_lo, g->c_hi, taps);
  NDK_LAUNCHED();
  return 0;
}

// ---- the implicit GEMM ----
struct ConvGemmArgs {
  const nd_bf16* src;  // [N][sd][cs]
  const nd_bf16* wp;   // [cd][taps][cs]
  const float* bias;   // [cd] or null
  nd_bf16* dst;        // [N][dd][cd]
  int nb, cs, cd;
  int sd[3], dd[3], k[3], s[3], p[3];
  int adj, acc;
  int vec16;    // cd % 8 == 0 and dst 16-byte aligned: 8 channels stored as one 16-byte word
  int ncls[3];  // classes per axis: 1 (corr) or s (adj)
};

// WMW x WNW warps, warp tile (BM / WMW) x (BN / WNW).
template <int BN, int WMW, int WNW, bool VEC>
__global__ void __launch_bounds__(32 * WMW * WNW) conv_gemm_kernel(ConvGemmArgs a) {
  constexpr int BM = 128, BK = ND_CONV_BK, S = ND_CONV_STAGES, P = BK + 8, NTH = 32 * WMW * WNW;
  constexpr int MT = BM / WMW / 16, NT = BN / WNW / 8;
  static_assert(NT % 2 == 0, "B fragments load two n8 tiles per ldmatrix.x4");
  ND_DYN_SMEM(nd_bf16, smem);
  nd_bf16* sA = smem;               // [S][BM][P]
  nd_bf16* sB = smem + S * BM * P;  // [S][BN][P]
  __shared__ int s_off[3][ND_CONV_MAXK], s_wt[3][ND_CONV_MAXK], s_nt[3], s_q[3], s_c[3];
  // row -> source base coords (far negative past the end, so every bounds check fails), the source element
  // offset of those coords, and the destination voxel (-1 past the end)
  __shared__ int s_rd[BM], s_rh[BM], s_rw[BM];
  __shared__ long long s_rb[BM], s_ro[BM];
  const int tid = threadIdx.x;

  // Per-axis tap table of this block's class (uniform over the block).
  if (tid < 3) {
    const int ax = tid, z = blockIdx.z;
    const int c = ax == 2 ? z % a.ncls[2] : ax == 1 ? (z / a.ncls[2]) % a.ncls[1] : z / (a.ncls[1] * a.ncls[2]);
    const int k = nd_axis(a.k, ax), s = nd_axis(a.s, ax), p = nd_axis(a.p, ax), dd = nd_axis(a.dd, ax);
    int nt = 0, q;
    if (!a.adj) {
      q = dd;
      for (int t = 0; t < k; t++, nt++) {
        s_off[ax][nt] = t - p;
        s_wt[ax][nt] = t;
      }
    } else {
      q = dd > c ? (dd - c + s - 1) / s : 0;
      for (int t = 0; t < k; t++) {
        const int r = c + p - t;
        if (((r % s) + s) % s == 0) {
          s_off[ax][nt] = r / s;  // exact, so truncation is fine for negatives
          s_wt[ax][nt] = t;
          nt++;
        }
      }
    }
    s_nt[ax] = nt;
    s_q[ax] = q;
    s_c[ax] = c;
  }
  __syncthreads();
  const int q0 = s_q[0], q1 = s_q[1], q2 = s_q[2];
  const long long M = (long long)a.nb * q0 * q1 * q2;
  const long long m0 = (long long)blockIdx.x * BM;
  if (m0 >= M) return;  // the whole block leaves (this class has fewer rows than class 0)
  const int n0 = blockIdx.y * BN;

  for (int r = tid; r < BM; r += NTH) {
    const long long m = m0 + r;
    if (m < M) {
      unsigned qq = (unsigned)m;  // M < 2^31 (conv.rs checks the voxel counts)
      const int w = (int)(qq % q2);
      qq /= q2;
      const int h = (int)(qq % q1);
      qq /= q1;
      const int d = (int)(qq % q0);
      const int n = (int)(qq / q0);
      const int si0 = a.adj ? 1 : a.s[0], si1 = a.adj ? 1 : a.s[1], si2 = a.adj ? 1 : a.s[2];
      const int so0 = a.adj ? a.s[0] : 1, so1 = a.adj ? a.s[1] : 1, so2 = a.adj ? a.s[2] : 1;
      s_rd[r] = d * si0;
      s_rh[r] = h * si1;
      s_rw[r] = w * si2;
      s_rb[r] = nd_vox(n, d * si0, h * si1, w * si2, a.sd[0], a.sd[1], a.sd[2]) * a.cs;
      s_ro[r] = nd_vox(n, d * so0 + s_c[0], h * so1 + s_c[1], w * so2 + s_c[2], a.dd[0], a.dd[1], a.dd[2]);
    } else {
      s_rd[r] = s_rh[r] = s_rw[r] = -(1 << 29);
      s_rb[r] = 0;
      s_ro[r] = -1;
    }
  }
  __syncthreads();

  const int nt1 = s_nt[1], nt2 = s_nt[2];
  const int Kv = s_nt[0] * nt1 * nt2 * a.cs;  // valid K of this class
  const int Kfull = a.k[0] * a.k[1] * a.k[2] * a.cs;
  const int nk = (Kv + BK - 1) / BK;
  // Loads. Vector path: each thread owns one 8-channel k granule (kc = (tid & 3) * 8) of rows tid/4 + i*NTH/4:
  // four threads fetch one row's 64 contiguous bytes. Scalar path: lanes run along rows (consecutive voxels,
  // so a warp's loads of one tap are contiguous for Cin = 1) and each thread owns columns tid/32 + j*NTH/32.
  // (c, jw, jh, jd): the channel and valid-tap indices of flattened k (j = (jd * nt1 + jh) * nt2 + jw).
  // Rows r0 + i * RSTEP; the tap's offset is one int added to the row's 64-bit base.
  auto load_col = [&](int stage, int kt, int kc, int c, int jw, int jh, int jd, int r0, auto rstep) {
    constexpr int RSTEP = decltype(rstep)::value;
    const bool kv = kt * BK + kc < Kv;
    if (!kv) c = jw = jh = jd = 0;
    const int od = s_off[0][jd], oh = s_off[1][jh], ow = s_off[2][jw];
    const int delta = ((od * a.sd[1] + oh) * a.sd[2] + ow) * a.cs + c;
    const int wcol = ((s_wt[0][jd] * a.k[1] + s_wt[1][jh]) * a.k[2] + s_wt[2][jw]) * a.cs + c;
    nd_bf16* As = sA + stage * BM * P;
    nd_bf16* Bs = sB + stage * BN * P;
#pragma unroll
    for (int i = 0; i < BM / RSTEP; i++) {
      const int r = r0 + i * RSTEP;
      const int d = s_rd[r] + od, h = s_rh[r] + oh, w = s_rw[r] + ow;
      const bool ok = kv && (unsigned)d < (unsigned)a.sd[0] && (unsigned)h < (unsigned)a.sd[1] &&
                      (unsigned)w < (unsigned)a.sd[2];
      const long long off = ok ? s_rb[r] + delta : 0;
      if (VEC) {
        nd_cp_async16(As + r * P + kc, a.src + off, ok);
      } else {
        As[r * P + kc] = ok ? a.src[off] : (nd_bf16)0;
      }
    }
#pragma unroll
    for (int i = 0; i < (BN + RSTEP - 1) / RSTEP; i++) {
      const int r = r0 + i * RSTEP;
      if (BN % RSTEP != 0 && r >= BN) break;
      const bool ok = kv && n0 + r < a.cd;
      const long long off = ok ? (long long)(n0 + r) * Kfull + wcol : 0;
      if (VEC) {
        nd_cp_async16(Bs + r * P + kc, a.wp + off, ok);
      } else {
        Bs[r * P + kc] = ok ? a.wp[off] : (nd_bf16)0;
      }
    }
  };
  // NOTE: tiles are loaded in order kt = 0, 1, 2, ..., so the vector path steps its k decode forward by BK
  // (no divisions in the main loop: C_src >= 8 means at most 4 wraps per step); the scalar path divides.
  auto decode = [&](int k, int& c, int& jw, int& jh, int& jd) {
    const int j = k / a.cs;
    c = k - j * a.cs;
    jw = j % nt2;
    jh = (j / nt2) % nt1;
    jd = j / (nt2 * nt1);
  };
  int vc = 0, vw = 0, vh = 0, vd = 0;
  if (VEC && Kv > 0) decode((tid & 3) * 8, vc, vw, vh, vd);
  auto load = [&](int stage, int kt) {
    if (VEC) {
      load_col(stage, kt, (tid & 3) * 8, vc, vw, vh, vd, tid >> 2, std::integral_constant<int, NTH / 4>());
      for (vc += BK; vc >= a.cs; vc -= a.cs)
        if (++vw == nt2) {
          vw = 0;
          if (++vh == nt1) {
            vh = 0;
            ++vd;
          }
        }
    } else {
#pragma unroll
      for (int kc = tid >> 5; kc < BK; kc += NTH / 32) {
        int c = 0, jw = 0, jh = 0, jd = 0;
        if (kt * BK + kc < Kv) decode(kt * BK + kc, c, jw, jh, jd);
        load_col(stage, kt, kc, c, jw, jh, jd, tid & 31, std::integral_constant<int, 32>());
      }
    }
  };

  const int warp = tid >> 5, lane = tid & 31;
  const int wm0 = (warp % WMW) * (BM / WMW), wn0 = (warp / WMW) * (BN / WNW);
  float acc[MT][NT][4];
  nd_zero_acc(acc);

  nd_cp_pipeline<S>(nk, load, [&](int stage) {
    const nd_bf16* As = sA + stage * BM * P;
    const nd_bf16* Bs = sB + stage * BN * P;
    const int j8 = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t af[MT][4], bfr[NT][2];
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
        nd_ldmatrix_x4(af[mt], As + (wm0 + mt * 16 + (j8 & 1) * 8 + r8) * P + kk + (j8 >> 1) * 8);
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        uint32_t r[4];
        nd_ldmatrix_x4(r, Bs + (wn0 + nt * 8 + (j8 >> 1) * 8 + r8) * P + kk + (j8 & 1) * 8);
        bfr[nt][0] = r[0];
        bfr[nt][1] = r[1];
        bfr[nt + 1][0] = r[2];
        bfr[nt + 1][1] = r[3];
      }
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++) nd_mma_bf16_16816(acc[mt][nt], af[mt], bfr[nt]);
    }
  });

  // Epilogue, staged through shared memory (the pipeline buffers are free now) so that the global stores are
  // 16-byte chunks of output rows: (acc + bias) (+ old value), rounded once to bf16.
  constexpr int PO = BN + 4;
  static_assert(BM * PO * 4 <= S * (BM + BN) * P * 2, "the fp32 staging tile fits the pipeline buffers");
  float* so = reinterpret_cast<float*>(smem);
  __syncthreads();
  const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int half = 0; half < 2; half++)
#pragma unroll
      for (int nt = 0; nt < NT; nt++) {
        float* o = so + (wm0 + mt * 16 + g + half * 8) * PO + wn0 + nt * 8 + 2 * t4;
        o[0] = acc[mt][nt][half * 2];
        o[1] = acc[mt][nt][half * 2 + 1];
      }
  __syncthreads();
  constexpr int CH = BN / 8;  // 8-channel chunks per tile row
  for (int e = tid; e < BM * CH; e += NTH) {
    const int r = e / CH, c = (e % CH) * 8, col = n0 + c;
    if (s_ro[r] < 0 || col >= a.cd) continue;
    nd_bf16* dp = a.dst + s_ro[r] * a.cd + col;
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = so[r * PO + c + j] + (a.bias && col + j < a.cd ? a.bias[col + j] : 0.f);
    if (a.vec16 && col + 8 <= a.cd) {
      nd_u32x4 w;
      if (a.acc) {
        w = *reinterpret_cast<const nd_u32x4*>(dp);
#pragma unroll
        for (int j = 0; j < 4; j++) {
          v[2 * j] += nd_bf2f((nd_bf16)(w.v[j] & 0xffffu));
          v[2 * j + 1] += nd_bf2f((nd_bf16)(w.v[j] >> 16));
        }
      }
#pragma unroll
      for (int j = 0; j < 4; j++) w.v[j] = nd_pack_bf2(nd_f2bf(v[2 * j]), nd_f2bf(v[2 * j + 1]));
      *reinterpret_cast<nd_u32x4*>(dp) = w;
    } else {
      for (int j = 0; j < 8 && col + j < a.cd; j++) dp[j] = nd_f2bf(a.acc ? v[j] + nd_bf2f(dp[j]) : v[j]);
    }
  }
}

template <int BN, int WMW, int WNW, bool VEC>
static int conv_gemm_launch(const ConvGemmArgs& a, void* stream) {
  constexpr int BM = 128, P = ND_CONV_BK + 8;
  const size_t smem = (size_t)ND_CONV_STAGES * (BM + BN) * P * sizeof(nd_bf16);
  long long q = a.nb;  // rows of class 0, the largest
  for (int ax = 0; ax < 3; ax++) q *= (a.dd[ax] + a.ncls[ax] - 1) / a.ncls[ax];
  const dim3 grid((unsigned)((q + BM - 1) / BM), (unsigned)((a.cd + BN - 1) / BN), (unsigned)(a.ncls[0] * a.ncls[1] * a.ncls[2]));
  auto k = conv_gemm_kernel<BN, WMW, WNW, VEC>;
  ND_SMEM_LIMIT(k, smem);
  ND_LAUNCH(k, grid, 32 * WMW * WNW, smem, stream, a);
  NDK_LAUNCHED();
  return 0;
}

// Narrow outputs get a narrow N tile (fewer padded columns); 16-byte gathers need C_src % 8 == 0 and
// 16-byte aligned bases.
template <bool VEC>
static int conv_gemm_pick(const ConvGemmArgs& a, void* stream) {
  if (a.cd <= 16) return conv_gemm_launch<16, 4, 1, VEC>(a, stream);
  if (a.cd <= 32) return conv_gemm_launch<32, 4, 1, VEC>(a, stream);
  return conv_gemm_launch<64, 2, 2, VEC>(a, stream);
}

static int conv_gemm(const nd_bf16* src, const nd_bf16* wp, const float* bias, nd_bf16* dst, const NdConvGeom* g,
                     bool adj, void* stream) {
  ConvGemmArgs a;
  a.src = src;
  a.wp = wp;
  a.bias = g->has_bias ? bias : nullptr;
  a.dst = dst;
  a.nb = g->n;
  a.cs = adj ? g->c_lo : g->c_hi;
  a.cd = adj ? g->c_hi : g->c_lo;
  for (int ax = 0; ax < 3; ax++) {
    a.sd[ax] = adj ? g->lo[ax] : g->hi[ax];
    a.dd[ax] = adj ? g->hi[ax] : g->lo[ax];
    a.k[ax] = g->k[ax];
    a.s[ax] = g->s[ax];
    a.p[ax] = g->p[ax];
    a.ncls[ax] = adj ? g->s[ax] : 1;
    if (g->k[ax] < 1 || g->k[ax] > ND_CONV_MAXK || g->s[ax] < 1) return (int)cudaErrorInvalidValue;
  }
  a.adj = adj ? 1 : 0;
  a.acc = g->accumulate;
  a.vec16 = (a.cd % 8 == 0 && ((uintptr_t)dst & 15) == 0) ? 1 : 0;
  if ((long long)a.nb * a.dd[0] * a.dd[1] * a.dd[2] == 0 || a.cd == 0) return 0;
  const bool vec = a.cs % 8 == 0 && ((uintptr_t)src & 15) == 0 && ((uintptr_t)wp & 15) == 0;
  return vec ? conv_gemm_pick<true>(a, stream) : conv_gemm_pick<false>(a, stream);
}

// lo (=|+=) corr(hi, w) + bias[c_lo]; wpc = pack's pc. Conv3d forward (hi = x, lo = y) and ConvTranspose3d
// backward-data (hi = dy, lo = dx; has_bias 0).
NDK_EXPORT int NDK(conv_corr)(const nd_bf16* hi, const nd_bf16* wpc, const float* bias, nd_bf16* lo,
                              const NdConvGeom* g, void* stream) {
  return conv_gemm(hi, wpc, bias, lo, g, false, stream);
}

// hi (=|+=) adj(lo, w) + bias[c_hi]; wpa = pack's pa. Conv3d backward-data (lo = dy, hi = dx; has_bias 0) and
// ConvTranspose3d forward (lo = x, hi = y).
NDK_EXPORT int NDK(conv_adj)(const nd_bf16* lo, const nd_bf16* wpa, const float* bias, nd_bf16* hi,
                             const NdConvGeom* g, void* stream) {
  return conv_gemm(lo, wpa, bias, hi, g, true, stream);
}
