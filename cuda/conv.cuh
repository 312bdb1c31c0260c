// Shared pieces of the Conv3d / ConvTranspose3d kernels (cuda/conv.cu: weight pack + forward and
// backward-data; cuda/conv_wgrad.cu: backward-weight and bias gradient). Mirrors
// crates/nndet-core/src/cuda/conv.rs (ConvGeom) and crates/nndet-core/src/cpu/conv3d/reference.rs (Geom).
//
// One "lo/hi" geometry covers both ops (as the CPU kernels): a lo tensor [N][lo][C_lo] and a hi tensor
// [N][hi][C_hi] (bf16, NDHWC on the device) joined per axis by hi = lo*s + t - p, weight [C_lo][C_hi][kd][kh][kw]
// (fp32 master, PyTorch layout: Conv3d [Cout][Cin][k], ConvTranspose3d [Cin][Cout][k]).
//   corr: lo[o][cl] (=|+=) sum_{t,ch} hi[o*s+t-p][ch] * w[cl][ch][t] (+ bias[cl])  -- conv fwd, convT bwd-data
//   adj:  hi[i][ch] (=|+=) sum_{t,cl: o*s+t-p=i} lo[o][cl] * w[cl][ch][t] (+ bias[ch]) -- conv bwd-data, convT fwd
//   wgrad: dw[cl][ch][t] (=|+=) sum_{n,o} lo[o][cl] * hi[o*s+t-p][ch]                  -- both bwd-weights
#pragma once
#include <type_traits>

#include "common.cuh"

// NOTE: field order is the ABI with conv.rs (#[repr(C)] ConvGeom); all int32.
struct NdConvGeom {
  int n;            // batch
  int c_lo, c_hi;   // channels of the lo / hi tensors
  int lo[3], hi[3]; // spatial sizes (d, h, w)
  int k[3], s[3], p[3];
  int has_bias;     // fwd: add bias[output channel]; wgrad: also reduce db
  int accumulate;   // 1: outputs (y, dx, dw, db) are added to, 0: overwritten
  int wsplits;      // wgrad: split-K count over voxels (chosen by conv.rs, sizes the workspace)
  int bsplits;      // wgrad: split count of the bias-gradient reduction
  int bias_of_hi;   // wgrad: db sums the hi tensor (convT: dy is hi) instead of lo (conv: dy is lo)
};

#define ND_CONV_MAXK 7  // kernels support odd (or convT) kernel sizes up to 7 per axis

// Tile shapes. Shared-memory rows are padded by 8 bf16 (16 bytes): rows stay 16-byte aligned for cp.async and
// ldmatrix, and the 8 rows one ldmatrix phase reads start in 8 different 16-byte bank groups (pitch 80 B, 144 B
// or 272 B: 5, 9, 17 units of 16 B, all odd), so fragment loads are conflict-free.
#define ND_CONV_BK 32     // K per pipeline stage: two m16n8k16 steps; 3 stages hide sm_80/90 global latency
#define ND_CONV_STAGES 3

// 16 bytes as one vector load / store (uint4 without the CUDA headers).
struct __align__(16) nd_u32x4 {
  uint32_t v[4];
};

// Flat voxel index of (n, d, h, w) in a [N][dims] volume (int64: element offsets may exceed 2^31).
// The S-stage cp.async pipeline both conv GEMMs run: load(stage, tile) issues one k-tile's copies into a
// stage, compute(stage) consumes a landed one. The next tile is issued once every thread has passed the
// barrier, so the stage it overwrites ((kt-1) % S) is no longer read. Ends with every copy landed.
template <int S, class Load, class Compute>
__device__ __forceinline__ void nd_cp_pipeline(int nk, Load& load, Compute&& compute) {
#pragma unroll
  for (int st = 0; st < S - 1; st++) {
    if (st < nk) load(st, st);
    nd_cp_async_commit();
  }
  for (int kt = 0; kt < nk; kt++) {
    nd_cp_async_wait<S - 2>();  // tile kt has landed (for this thread) ...
    __syncthreads();            // ... for every thread
    if (kt + S - 1 < nk) load((kt + S - 1) % S, kt + S - 1);
    nd_cp_async_commit();
    compute(kt % S);
  }
  nd_cp_async_wait<0>();
}

// Zero a warp's mma accumulators [MT][NT][4].
template <int MT, int NT>
__device__ __forceinline__ void nd_zero_acc(float (&acc)[MT][NT][4]) {
#pragma unroll
  for (int i = 0; i < MT; i++)
#pragma unroll
    for (int j = 0; j < NT; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;
}

__device__ __forceinline__ long long nd_vox(long long n, int d, int h, int w, int D, int H, int W) {
  return ((n * D + d) * H + h) * (long long)W + w;
}

// v[ax] for a runtime axis without dynamic indexing (which would move a by-value kernel argument struct
// to local memory).
__device__ __forceinline__ int nd_axis(const int v[3], int ax) { return ax == 0 ? v[0] : ax == 1 ? v[1] : v[2]; }
