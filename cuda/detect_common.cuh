// Device helpers shared by the detection kernels (cuda/detect_*.cu): 3D box arithmetic in the exact f32
// operation order of crates/nndet-core/src/cpu/detect/boxes.rs, the coder's decode of one row,
// order-preserving sort keys, block-level bitonic sort / ordered compaction / sum, and the NMS and top-k
// argument structs with their launchers (called by detect_post.cu too). Boxes are rows of 6 f32
// (x1, y1, x2, y2, z1, z2).
//
// NOTE: nvcc contracts `a * b + c` into one fma by default, which rounds once where the CPU (Rust never
// contracts) rounds twice. Every product that feeds a sum in code that must agree bit for bit with the CPU
// (IoU, centre distances, anchors, the coder, ATSS statistics) goes through ND_FMUL / ND_DMUL, which nvcc
// never contracts. The emulator build is plain C++ where the products are separate statements.
#pragma once
#include "common.cuh"

#ifdef ND_EMU
#define ND_FMUL(a, b) ((float)(a) * (float)(b))
#define ND_DMUL(a, b) ((double)(a) * (double)(b))
#else
#define ND_FMUL(a, b) __fmul_rn((a), (b))
#define ND_DMUL(a, b) __dmul_rn((a), (b))
#endif

typedef unsigned long long u64;
#define ND_U64_MAX 0xffffffffffffffffull
#define ND_SORT_TILE 1024

// Ascending sort of n_pad (a power of two >= ND_SORT_TILE) 64-bit keys in place on `stream`
// (detect_select.cu); returns a cudaError_t.
int nd_det_sort_u64(unsigned long long* keys, int64_t n_pad, void* stream);

// torch.maximum / torch.minimum: NaN if either is NaN (a NaN `a` wins, a NaN `b` loses the compare).
__device__ __forceinline__ float nd_maxp(float a, float b) { return (a > b || a != a) ? a : b; }
__device__ __forceinline__ float nd_minp(float a, float b) { return (a < b || a != a) ? a : b; }
// clamp(min=0) keeping NaN.
__device__ __forceinline__ float nd_relu(float x) { return x < 0.0f ? 0.0f : x; }

__device__ __forceinline__ float nd_box_area(const float* b) {
  return ND_FMUL(ND_FMUL(b[2] - b[0], b[3] - b[1]), b[5] - b[4]);
}

__device__ __forceinline__ float nd_box_inter(const float* a, const float* b) {
  float dx = nd_relu(nd_minp(a[2], b[2]) - nd_maxp(a[0], b[0]));
  float dy = nd_relu(nd_minp(a[3], b[3]) - nd_maxp(a[1], b[1]));
  float dz = nd_relu(nd_minp(a[5], b[5]) - nd_maxp(a[4], b[4]));
  return ND_FMUL(ND_FMUL(dx, dy), dz);
}

// box_iou with precomputed volumes: inter / ((va + vb) - inter).
__device__ __forceinline__ float nd_box_iou_v(const float* a, const float* b, float va, float vb) {
  float i = nd_box_inter(a, b);
  return i / ((va + vb) - i);
}

// generalized_box_iou with eps on the enclosing volume only.
__device__ __forceinline__ float nd_box_giou(const float* a, const float* b, float eps) {
  float va = nd_box_area(a), vb = nd_box_area(b);
  float i = nd_box_inter(a, b);
  float uni = (va + vb) - i;
  float iou = i / uni;
  float ex = nd_relu(nd_maxp(a[2], b[2]) - nd_minp(a[0], b[0]));
  float ey = nd_relu(nd_maxp(a[3], b[3]) - nd_minp(a[1], b[1]));
  float ez = nd_relu(nd_maxp(a[5], b[5]) - nd_minp(a[4], b[4]));
  float encl = ND_FMUL(ND_FMUL(ex, ey), ez) + eps;
  return iou - (encl - uni) / encl;
}

__device__ __forceinline__ void nd_box_center(const float* b, float c[3]) {
  c[0] = (b[0] + b[2]) / 2.0f;
  c[1] = (b[1] + b[3]) / 2.0f;
  c[2] = (b[4] + b[5]) / 2.0f;
}

// sqrt((dx² + dy²) + dz²) in f32, as torch (and cpu/detect/boxes.rs center_dist).
__device__ __forceinline__ float nd_center_dist(const float a[3], const float b[3]) {
  float dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
  return sqrtf((ND_FMUL(dx, dx) + ND_FMUL(dy, dy)) + ND_FMUL(dz, dz));
}

// Box columns (lo, hi) of axis ax and the delta slots (centre, size).
__device__ __forceinline__ void nd_axis_cols(int ax, int& lo, int& hi, int& dc, int& ds) {
  lo = ax == 2 ? 4 : ax;
  hi = ax == 2 ? 5 : ax + 2;
  dc = ax == 2 ? 4 : ax;
  ds = ax == 2 ? 5 : ax + 2;
}

// BoxCoderND.decode_single of one row (the CPU's decode_one): size delta clamped above at `clip`.
__device__ __forceinline__ void nd_decode_row(const float* __restrict__ d, const float* __restrict__ a, const float w[6],
                                              float clip, float* __restrict__ out) {
#pragma unroll
  for (int ax = 0; ax < 3; ++ax) {
    int lo, hi, dc, ds;
    nd_axis_cols(ax, lo, hi, dc, ds);
    float aw = __ldg(a + hi) - __ldg(a + lo);
    float ac = __ldg(a + lo) + ND_FMUL(0.5f, aw);
    float dxy = __ldg(d + dc) / w[dc];
    float dwh = __ldg(d + ds) / w[ds];
    if (dwh > clip) dwh = clip;
    float pc = ND_FMUL(dxy, aw) + ac;
    float pw = ND_FMUL(expf(dwh), aw);
    out[lo] = pc - ND_FMUL(0.5f, pw);
    out[hi] = pc + ND_FMUL(0.5f, pw);
  }
}

// Order-preserving u32 key of a non-NaN f32 (-0 and +0 map to one key, as they compare equal).
__device__ __forceinline__ uint32_t nd_f32_key(float v) {
  uint32_t b = (v == 0.0f) ? 0u : __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Sort key for "score descending, then index ascending" as an ascending u64.
__device__ __forceinline__ unsigned long long nd_desc_key(float score, uint32_t idx) {
  return ((unsigned long long)(~nd_f32_key(score)) << 32) | idx;
}

// In-place ascending bitonic sort of `n` (a power of two) 64-bit keys in shared memory by the whole block.
// Ends with a __syncthreads; every thread of the block must call it.
__device__ __forceinline__ void nd_block_bitonic(unsigned long long* s, int n) {
  for (int k = 2; k <= n; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int t = threadIdx.x; t < n / 2; t += blockDim.x) {
        int i = 2 * j * (t / j) + (t % j);
        int l = i + j;
        unsigned long long a = s[i], b = s[l];
        bool asc = (i & k) == 0;
        if ((a > b) == asc) {
          s[i] = b;
          s[l] = a;
        }
      }
      __syncthreads();
    }
  }
}

// Exclusive rank of `pred` among the block's threads in thread order (a stable compaction slot); *total gets
// the block's count. blockDim.x must be a multiple of 32 and every thread must call (it synchronizes);
// `warp_counts` is shared scratch of blockDim.x / 32 ints.
__device__ __forceinline__ int nd_block_rank(bool pred, int* warp_counts, int* total) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  unsigned bal = __ballot_sync(0xffffffffu, pred);
  if (lane == 0) warp_counts[w] = __popc(bal);
  __syncthreads();
  int before = 0, tot = 0;
  for (int q = 0; q < (int)(blockDim.x >> 5); ++q) {
    int c = warp_counts[q];
    before += q < w ? c : 0;
    tot += c;
  }
  *total = tot;
  __syncthreads();
  return before + __popc(bal & ((1u << lane) - 1u));
}

// Deterministic block sum (fixed shuffle tree, then the warps' totals in order); the result is valid in
// thread 0. Every thread must call; `scratch` is shared memory of 32 floats.
__device__ __forceinline__ float nd_block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (lane == 0) scratch[w] = v;
  __syncthreads();
  if (w == 0) {
    v = lane < nw ? scratch[lane] : 0.0f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  }
  return v;
}

// Numerically stable logistic function.
__device__ __forceinline__ float nd_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

// log(1 + e^x) without overflow.
__device__ __forceinline__ float nd_softplus(float x) { return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }

// ---- launchers shared between files: NMS/WBC (detect_nms.cu) and top-k (detect_select.cu) ----
struct NdNmsGeom {
  int64_t n;
  int64_t n_pad;  // sort length: a power of two >= max(n, ND_SORT_TILE)
  int32_t cbn;    // ceil(n / 64)
  int32_t wbc;    // 0: NMS, 1: WBC
  float thr;
  float score_thr;  // WBC: clusters with score > score_thr are emitted
  // inputs
  const float* boxes;     // [n, 6]
  const float* scores;    // [n]
  const int32_t* labels;  // [n] or null (NMS without classes)
  const float* weights;   // [n] or null (NMS: rank by score * weight; WBC: required)
  const float* n_exp;     // [n] WBC
  // workspace
  u64* keys;        // [n_pad]
  float* sbox;      // [n, 6] boxes in rank order
  float* svol;      // [n]
  int32_t* slab;    // [n]
  float* step;      // [1]
  u64* mask;        // [n, cbn]
  int32_t* ranks;   // [n] ranks of the kept boxes, in keep order
  int32_t* owner;   // [n] WBC: rank of the kept box that removed rank r first (r itself when kept)
  int32_t* nkept;   // [1]
  float* rec_box;   // [n, 6] WBC cluster records by keep order
  float* rec_score; // [n]
  u64* keys2;       // [n_pad] WBC: (label, keep order) of emitted clusters
  // outputs
  int32_t* keep;      // [n] NMS: kept indices in keep order
  int32_t* count;     // [1] NMS kept count / WBC cluster count
  float* out_boxes;   // [n, 6] WBC
  float* out_scores;  // [n]
  int32_t* out_labels;  // [n]
};
static_assert(sizeof(NdNmsGeom) == 208, "layout shared with crates/nndet-core/src/cuda/detect.rs");

struct NdTopkGeom {
  int64_t n;      // score domain
  int64_t k;      // wanted (> 0)
  int64_t k_pad;  // sort length: a power of two >= max(k, ND_SORT_TILE)
  int32_t mode;   // 0: scores[i] when > thr; 1: max over c logits[i, :] when labels[i] == 0
  int32_t c;
  float thr;
  int32_t pad_;
  const float* scores;    // mode 0: [n]; mode 1: logits [n, c]
  const int32_t* labels;  // mode 1: [n]
  unsigned int* hist;     // workspace [256]
  u64* state;             // workspace [4]: prefix, mask, need, take-all flag
  u64* slot;              // workspace [1]: collected count
  u64* keys;              // workspace [k_pad]
  float* out_scores;      // [k]
  int32_t* out_idx;       // [k]
  int32_t* count;         // [1] = min(k, candidates)
};
static_assert(sizeof(NdTopkGeom) == 112, "layout shared with crates/nndet-core/src/cuda/detect.rs");

NDK_EXPORT int NDK(det_nms)(const NdNmsGeom* p, void* stream);
NDK_EXPORT int NDK(det_topk)(const NdTopkGeom* p, void* stream);
