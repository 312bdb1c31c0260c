// Conv3d / ConvTranspose3d backward-weight and bias gradient on tensor cores (see conv.cuh for the lo/hi
// geometry; mirrors cpu/conv3d/reference.rs `wgrad` and `bias_grad`):
//   dw[cl][ch][t] (=|+=) sum_{n,o} lo[n][o][cl] * hi[n][o*s+t-p][ch]     (fp32, PyTorch layout)
//   db[c]         (=|+=) sum_{n,v} dy[n][v][c]                           (dy = lo for conv, hi for convT)
// As a GEMM: m = cl (C_lo), n = (tap t, ch) flattened (C_hi fastest, so 8 channels of one tap are one
// 16-byte gather), k = lo voxels. A[m][k] = lo[k][m] and B[k][n] = hi[shifted k][ch] are both stored k-major
// in shared memory ([BK][BM], [BK][BN]: the natural NDHWC order, 16-byte cp.async along channels) and read
// with ldmatrix.trans. Tiles BM = 64 x BN = 128 x BK = 32 voxels, 4 warps (2 x 2, warp tile 32 x 64), 3
// stages; BM = 32 (4 warps 1 x 4, warp tile 32 x 32) when C_lo <= 32, so the 32-channel full-resolution
// layers (the most voxels) waste no tensor-core work on padding rows. Each thread gathers one voxel row of
// B per tile (stepping its decode, no divisions in the main loop) and 4 granules (or 32 elements) of it.
// Split-K over voxels (blockIdx.z): each split writes its fp32 partial tile to the workspace and a second
// kernel sums the splits in a fixed order into dw (deterministic, no atomics). The bias gradient is the same
// two-pass reduction (partial sums per voxel chunk, then a fixed-order sum).
#include "conv.cuh"

struct ConvWgradArgs {
  const nd_bf16* lo;  // [N][lo][c_lo]
  const nd_bf16* hi;  // [N][hi][c_hi]
  float* part;        // [splits][c_lo][ncol]
  int c_lo, c_hi, ncol;
  int lo_d[3], hi_d[3], k[3], s[3], p[3];
  long long V;      // N * lo voxels
  long long chunk;  // voxels per split, a multiple of BK
};

template <int BM, bool VA, bool VB>
__global__ void __launch_bounds__(128) conv_wgrad_kernel(ConvWgradArgs a) {
  constexpr int BN = 128, BK = ND_CONV_BK, S = ND_CONV_STAGES, PA = BM + 8, PB = BN + 8, NTH = 128;
  constexpr int WM = BM / 32, WN = 4 / WM;  // warps along M and N; warp tile 32 x BN / WN
  constexpr int MT = 2, NT = BN / WN / 8;
  ND_DYN_SMEM(nd_bf16, smem);
  nd_bf16* sA = smem;                // [S][BK][PA]
  nd_bf16* sB = smem + S * BK * PA;  // [S][BK][PB]
  // scalar path: per B column, the tap offsets (far negative past the last column, so every bounds check
  // fails), the hi-voxel delta of the tap and the channel
  __shared__ int s_cd[BN], s_ch[BN], s_cw[BN], s_cdelta[BN], s_cc[BN];
  const int tid = threadIdx.x;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const long long v0 = (long long)blockIdx.z * a.chunk;
  const long long v1 = v0 + a.chunk < a.V ? v0 + a.chunk : a.V;
  const int nk = v1 > v0 ? (int)((v1 - v0 + BK - 1) / BK) : 0;

  // column n0 + j -> (tap offsets, voxel delta, channel)
  auto col_info = [&](int j, int& od, int& oh, int& ow, int& delta, int& ch) {
    const int col = n0 + j;
    if (col >= a.ncol) {
      od = oh = ow = -(1 << 29);
      delta = ch = 0;
      return;
    }
    const int t = col / a.c_hi;
    ch = col - t * a.c_hi;
    od = t / (a.k[2] * a.k[1]) - a.p[0];
    oh = (t / a.k[2]) % a.k[1] - a.p[1];
    ow = t % a.k[2] - a.p[2];
    delta = (od * a.hi_d[1] + oh) * a.hi_d[2] + ow;
  };
  // Vector path: thread tid loads B row tid / 4, column granules (tid & 3) + 4 i, kept in registers.
  constexpr int NBC = VB ? BN / 32 : 1;
  int bdo[NBC], bho[NBC], bwo[NBC], bch[NBC], bdelta[NBC];
#pragma unroll
  for (int i = 0; i < NBC; i++) col_info(((tid & 3) + 4 * i) * 8, bdo[i], bho[i], bwo[i], bdelta[i], bch[i]);
  if (!VB) {
    col_info(tid, s_cd[tid], s_ch[tid], s_cw[tid], s_cdelta[tid], s_cc[tid]);
    __syncthreads();
  }

  // voxel -> (n, od, oh, ow) of the lo volume; V < 2^31 (conv.rs checks the voxel counts): 32-bit division
  // NOTE: tiles are loaded in order kt = 0, 1, 2, ..., and every thread loads one B row (voxel) per tile, so
  // it steps that voxel's decode forward by BK, dividing only when a row of the volume wraps.
  const int brow = VB ? tid >> 2 : tid & 31;
  int sn, sd, sh, sw;
  {
    unsigned q = (unsigned)(v0 + brow);
    sw = (int)(q % (unsigned)a.lo_d[2]);
    q /= (unsigned)a.lo_d[2];
    sh = (int)(q % (unsigned)a.lo_d[1]);
    q /= (unsigned)a.lo_d[1];
    sd = (int)(q % (unsigned)a.lo_d[0]);
    sn = (int)(q / (unsigned)a.lo_d[0]);
  }
  auto step_vox = [&]() {
    sw += BK;
    if (sw < a.lo_d[2]) return;
    int c = sw / a.lo_d[2];
    sw -= c * a.lo_d[2];
    sh += c;
    if (sh < a.lo_d[1]) return;
    c = sh / a.lo_d[1];
    sh -= c * a.lo_d[1];
    sd += c;
    if (sd < a.lo_d[0]) return;
    c = sd / a.lo_d[0];
    sd -= c * a.lo_d[0];
    sn += c;
  };

  auto load = [&](int stage, int kt) {
    const long long kb = v0 + (long long)kt * BK;
    nd_bf16* As = sA + stage * BK * PA;
    nd_bf16* Bs = sB + stage * BK * PB;
    // A: lo[v][m0 + m] -> As[v - kb][m]
    if (VA) {
      constexpr int GR = BM / 8;  // granules per row
#pragma unroll
      for (int i = 0; i < BK * GR / NTH; i++) {
        const int e = tid + i * NTH, r = e / GR, c = (e % GR) * 8;
        const bool ok = kb + r < v1 && m0 + c < a.c_lo;
        nd_cp_async16(As + r * PA + c, a.lo + (ok ? (kb + r) * a.c_lo + m0 + c : 0), ok);
      }
    } else {
      const int c = tid % BM;
#pragma unroll
      for (int i = 0; i < BK * BM / NTH; i++) {
        const int r = tid / BM + i * (NTH / BM);
        const bool ok = kb + r < v1 && m0 + c < a.c_lo;
        As[r * PA + c] = ok ? a.lo[(kb + r) * a.c_lo + m0 + c] : (nd_bf16)0;
      }
    }
    // B: hi[v*s + t - p][ch] -> Bs[v - kb][col]
    const bool vok = kb + brow < v1;
    const int bd = sd * a.s[0], bh = sh * a.s[1], bw = sw * a.s[2];
    const int base = ((sn * a.hi_d[0] + bd) * a.hi_d[1] + bh) * a.hi_d[2] + bw;  // hi voxel of tap offset 0
    step_vox();
    if (VB) {
#pragma unroll
      for (int i = 0; i < NBC; i++) {
        const int d = bd + bdo[i], h = bh + bho[i], w = bw + bwo[i];
        const bool ok = vok && (unsigned)d < (unsigned)a.hi_d[0] && (unsigned)h < (unsigned)a.hi_d[1] &&
                        (unsigned)w < (unsigned)a.hi_d[2];
        const long long off = ok ? (long long)(base + bdelta[i]) * a.c_hi + bch[i] : 0;
        nd_cp_async16(Bs + brow * PB + ((tid & 3) + 4 * i) * 8, a.hi + off, ok);
      }
    } else {
#pragma unroll 4
      for (int j = tid >> 5; j < BN; j += NTH / 32) {
        const int d = bd + s_cd[j], h = bh + s_ch[j], w = bw + s_cw[j];
        const bool ok = vok && (unsigned)d < (unsigned)a.hi_d[0] && (unsigned)h < (unsigned)a.hi_d[1] &&
                        (unsigned)w < (unsigned)a.hi_d[2];
        Bs[brow * PB + j] = ok ? a.hi[(long long)(base + s_cdelta[j]) * a.c_hi + s_cc[j]] : (nd_bf16)0;
      }
    }
  };

  const int warp = tid >> 5, lane = tid & 31;
  const int wm0 = (warp % WM) * 32, wn0 = (warp / WM) * (BN / WN);
  float acc[MT][NT][4];
  nd_zero_acc(acc);

  nd_cp_pipeline<S>(nk, load, [&](int stage) {
    const nd_bf16* As = sA + stage * BK * PA;
    const nd_bf16* Bs = sB + stage * BK * PB;
    const int j8 = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t af[MT][4], bfr[NT][2];
      // matrix j8: m block j8 & 1, k block j8 >> 1 (a[0..3] order of the m16n8k16 A fragment)
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
        nd_ldmatrix_x4_trans(af[mt], As + (kk + (j8 >> 1) * 8 + r8) * PA + wm0 + mt * 16 + (j8 & 1) * 8);
      // matrix j8: k block j8 & 1, n block j8 >> 1 (b[0], b[1] of two n8 tiles)
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        uint32_t r[4];
        nd_ldmatrix_x4_trans(r, Bs + (kk + (j8 & 1) * 8 + r8) * PB + wn0 + nt * 8 + (j8 >> 1) * 8);
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

  // This split's partial tile (written even when empty, so the reduction reads no stale values).
  float* part = a.part + (long long)blockIdx.z * a.c_lo * a.ncol;
  const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int m = m0 + wm0 + mt * 16 + g + half * 8;
      if (m >= a.c_lo) continue;
#pragma unroll
      for (int nt = 0; nt < NT; nt++) {
        const int col = n0 + wn0 + nt * 8 + 2 * t4;
        float* dst = part + (long long)m * a.ncol + col;
        if (col < a.ncol) dst[0] = acc[mt][nt][half * 2];
        if (col + 1 < a.ncol) dst[1] = acc[mt][nt][half * 2 + 1];
      }
    }
}

// dw[m][ch][t] (=|+=) sum_split part[split][m][t*c_hi + ch]: reads coalesced over the partials, fixed order.
__global__ void conv_wgrad_reduce_kernel(const float* __restrict__ part, float* dw, int splits, int c_lo, int c_hi,
                                         int taps, int acc) {
  const long long total = (long long)c_lo * c_hi * taps, ncol = (long long)c_hi * taps;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    float s = 0.f;
    for (int sp = 0; sp < splits; sp++) s += part[sp * total + i];
    const long long m = i / ncol;
    const int col = (int)(i - m * ncol);
    const int t = col / c_hi, ch = col - t * c_hi;
    const long long o = (m * c_hi + ch) * taps + t;
    dw[o] = acc ? dw[o] + s : s;
  }
}

// Bias partials: block (32 channels, 8 voxel lanes), grid (channel groups, splits); part[split][c].
__global__ void conv_bias_partial_kernel(const nd_bf16* __restrict__ dy, float* part, int C, long long V, long long chunk) {
  __shared__ float red[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const long long v0 = (long long)blockIdx.y * chunk;
  const long long v1 = v0 + chunk < V ? v0 + chunk : V;
  float s = 0.f;
  if (c < C)
    for (long long v = v0 + threadIdx.y; v < v1; v += 8) s += nd_bf2f(dy[v * C + c]);
  red[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t = 0.f;
    for (int i = 0; i < 8; i++) t += red[i][threadIdx.x];
    part[(long long)blockIdx.y * C + c] = t;
  }
}

__global__ void conv_bias_reduce_kernel(const float* __restrict__ part, float* db, int splits, int C, int acc) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s = 0.f;
  for (int sp = 0; sp < splits; sp++) s += part[(long long)sp * C + c];
  db[c] = acc ? db[c] + s : s;
}

template <int BM, bool VA, bool VB>
static int conv_wgrad_launch(const ConvWgradArgs& a, int splits, void* stream) {
  const size_t smem = (size_t)ND_CONV_STAGES * ND_CONV_BK * (BM + 8 + 128 + 8) * sizeof(nd_bf16);
  const dim3 grid((unsigned)((a.c_lo + BM - 1) / BM), (unsigned)((a.ncol + 127) / 128), (unsigned)splits);
  auto k = conv_wgrad_kernel<BM, VA, VB>;
  ND_SMEM_LIMIT(k, smem);
  ND_LAUNCH(k, grid, 128, smem, stream, a);
  NDK_LAUNCHED();
  return 0;
}

template <int BM>
static int conv_wgrad_pick(const ConvWgradArgs& a, bool va, bool vb, int splits, void* stream) {
  if (va) return vb ? conv_wgrad_launch<BM, true, true>(a, splits, stream) : conv_wgrad_launch<BM, true, false>(a, splits, stream);
  return vb ? conv_wgrad_launch<BM, false, true>(a, splits, stream) : conv_wgrad_launch<BM, false, false>(a, splits, stream);
}

// dw (=|+=) wgrad(lo, hi); db (=|+=) bias grad of (bias_of_hi ? hi : lo) when has_bias. ws: at least
// (wsplits * c_lo * c_hi * taps + bsplits * C_bias) floats (conv.rs `wgrad_workspace_bytes`).
NDK_EXPORT int NDK(conv_wgrad)(const nd_bf16* lo, const nd_bf16* hi, float* dw, float* db, float* ws,
                               const NdConvGeom* g, void* stream) {
  ConvWgradArgs a;
  a.lo = lo;
  a.hi = hi;
  a.part = ws;
  a.c_lo = g->c_lo;
  a.c_hi = g->c_hi;
  int taps = 1;
  long long lo_sp = 1, hi_sp = 1;
  for (int ax = 0; ax < 3; ax++) {
    a.lo_d[ax] = g->lo[ax];
    a.hi_d[ax] = g->hi[ax];
    a.k[ax] = g->k[ax];
    a.s[ax] = g->s[ax];
    a.p[ax] = g->p[ax];
    taps *= g->k[ax];
    lo_sp *= g->lo[ax];
    hi_sp *= g->hi[ax];
  }
  a.ncol = taps * g->c_hi;
  a.V = g->n * lo_sp;
  const int splits = g->wsplits;
  if (splits < 1 || g->bsplits < 1 || a.V <= 0) return (int)cudaErrorInvalidValue;
  const long long per = (a.V + splits - 1) / splits;
  a.chunk = (per + ND_CONV_BK - 1) / ND_CONV_BK * ND_CONV_BK;
  if (a.c_lo > 0 && a.ncol > 0) {
    const bool va = g->c_lo % 8 == 0 && ((uintptr_t)lo & 15) == 0;
    const bool vb = g->c_hi % 8 == 0 && ((uintptr_t)hi & 15) == 0;
    int e = a.c_lo <= 32 ? conv_wgrad_pick<32>(a, va, vb, splits, stream) : conv_wgrad_pick<64>(a, va, vb, splits, stream);
    if (e) return e;
    const long long total = (long long)a.c_lo * a.ncol;
    const int blocks = (int)((total + 255) / 256 < 4096 ? (total + 255) / 256 : 4096);
    ND_LAUNCH(conv_wgrad_reduce_kernel, blocks, 256, 0, stream, (const float*)ws, dw, splits, a.c_lo, a.c_hi, taps,
              g->accumulate);
    NDK_LAUNCHED();
  }
  if (g->has_bias) {
    const nd_bf16* dy = g->bias_of_hi ? hi : lo;
    const int C = g->bias_of_hi ? g->c_hi : g->c_lo;
    const long long Vb = g->n * (g->bias_of_hi ? hi_sp : lo_sp);
    const int bs = g->bsplits;
    const long long chunk = (Vb + bs - 1) / bs;
    float* bpart = ws + (long long)splits * a.c_lo * a.ncol;
    ND_LAUNCH(conv_bias_partial_kernel, dim3((C + 31) / 32, bs), dim3(32, 8), 0, stream, dy, bpart, C, Vb, chunk);
    NDK_LAUNCHED();
    ND_LAUNCH(conv_bias_reduce_kernel, (C + 255) / 256, 256, 0, stream, (const float*)bpart, db, bs, C, g->accumulate);
    NDK_LAUNCHED();
  }
  return 0;
}
