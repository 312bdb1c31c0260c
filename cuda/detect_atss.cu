// ATSS matching on the device, mirroring crates/nndet-core/src/cpu/detect/atss.rs (nnDetection
// ATSSMatcher.compute_matches). GT boxes [G, 6], anchors [A, 6] level-major (per-level counts), output
// matches [A] int32: GT index or -1 (BELOW_LOW_THRESHOLD; ATSS never produces BETWEEN_THRESHOLDS).
//
// Grouped path (the CPU's fast path): a first pass over the anchors checks per level that every run of
// per_loc consecutive anchors (one feature-map position of the generator) has bit-identical centres; such
// a level selects positions instead of anchors (per_loc times less work and traffic): the k nearest
// anchors by (distance, index) are the anchors, in index order, of the ceil(k / per_loc) nearest
// positions, the last one cut at k. Other levels select anchor by anchor; both give the same candidates.
// Kernel 1, one block per GT: per level, the k = min(num_candidates * per_loc, level size) anchors nearest
// to the GT centre by (centre distance, anchor index) — the CPU's order, ties to the lower index — found by
// a 4-pass radix select on the distance bits (shared 256-bin histograms; distances are recomputed per pass,
// the anchors stay in L2) and one ordered collection pass (ties at the k-th distance taken in index order
// through block ballots), then sorted in shared memory (bitonic on (dist bits, index)). The candidates'
// IoUs go to the workspace; thread 0 forms mean + unbiased std exactly as the CPU (f64 sums in candidate
// order, mean as f32 sum / n), then each candidate is kept if IoU >= threshold (and its centre lies more
// than 0.01 inside the GT when asked).
// Kernel 2, one block: anchors' best IoU over GTs in GT order (first GT on ties), as the CPU's merge.
// Limits: k per level <= ND_ATSS_KMAX (1024), levels <= ND_MAX_LEVELS.
#include "detect_common.cuh"

#define ND_ATSS_KMAX 1024
#define ND_ATSS_MAX_LEVELS 8
#define ND_ATSS_THREADS 256

struct NdAtssGeom {
  int64_t g;                          // GT boxes
  int64_t a;                          // anchors
  int32_t levels;
  int32_t k_total;                    // sum of k over levels (candidates per GT)
  int64_t start[ND_ATSS_MAX_LEVELS];  // first anchor of each level
  int64_t count[ND_ATSS_MAX_LEVELS];  // anchors per level
  int32_t k[ND_ATSS_MAX_LEVELS];      // candidates per level
  int32_t center_in_gt;
  int32_t per_loc;  // anchors per position (the group size of the grouped path)
  const float* gt;       // [G, 6]
  const float* anchors;  // [A, 6]
  int32_t* matches;      // [A]
  int32_t* cand;         // workspace [G, k_total]: candidate anchor, -1 when not positive
  float* cand_iou;       // workspace [G, k_total]
  float* best;           // workspace [A]
  int32_t* grouped;      // workspace [ND_ATSS_MAX_LEVELS]: level l runs its selection per position
};
static_assert(sizeof(NdAtssGeom) == 248, "layout shared with crates/nndet-core/src/cuda/detect.rs");

__device__ __forceinline__ uint32_t nd_anchor_dist_bits(const float* __restrict__ anchors, int64_t i, const float gc[3]) {
  float a[6];
#pragma unroll
  for (int k = 0; k < 6; ++k) a[k] = __ldg(anchors + i * 6 + k);
  float c[3];
  nd_box_center(a, c);
  return __float_as_uint(nd_center_dist(gc, c));
}


__global__ void __launch_bounds__(ND_ATSS_THREADS) atss_candidates_kernel(NdAtssGeom g) {
  __shared__ int hist[256];
  __shared__ u64 skey[ND_ATSS_KMAX];
  __shared__ int wc[ND_ATSS_THREADS / 32];
  __shared__ uint32_t s_prefix;
  __shared__ int s_need;
  __shared__ float s_thr;
  const int tid = threadIdx.x, bd = blockDim.x;
  for (int64_t gi = blockIdx.x; gi < g.g; gi += gridDim.x) {
    float gt[6], gc[3];
#pragma unroll
    for (int k = 0; k < 6; ++k) gt[k] = __ldg(g.gt + gi * 6 + k);
    nd_box_center(gt, gc);
    int32_t* cand = g.cand + gi * g.k_total;
    float* ciou = g.cand_iou + gi * g.k_total;
    int off = 0;
    for (int l = 0; l < g.levels; ++l) {
      const int k = g.k[l];
      if (k == 0) continue;
      const int P = g.grouped[l] ? g.per_loc : 1;  // anchors per selection unit
      const int64_t lo = g.start[l], units = g.count[l] / P;
      const int m = (k + P - 1) / P;               // units to select
      // radix select of the m-th smallest unit distance (bits), 8 bits per pass from the top
      uint32_t prefix = 0, pmask = 0;
      int need = m;
      for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = tid; b < 256; b += bd) hist[b] = 0;
        __syncthreads();
        for (int64_t u = tid; u < units; u += bd) {
          uint32_t d = nd_anchor_dist_bits(g.anchors, lo + u * P, gc);
          if ((d & pmask) == prefix) atomicAdd(&hist[(d >> shift) & 255u], 1);
        }
        __syncthreads();
        if (tid == 0) {
          int cum = 0;
          for (int b = 0; b < 256; ++b) {
            if (cum + hist[b] >= need) {
              s_prefix = prefix | ((uint32_t)b << shift);
              s_need = need - cum;
              break;
            }
            cum += hist[b];
          }
        }
        __syncthreads();
        prefix = s_prefix;
        need = s_need;
        pmask |= 255u << shift;
      }
      // prefix = the m-th distance T: take every unit below T and the `need` lowest-index ones at T
      const int n_less = m - need;
      int seen_less = 0, seen_eq = 0;
      for (int64_t base = 0; base < units; base += bd) {
        const int64_t u = base + tid;
        uint32_t d = u < units ? nd_anchor_dist_bits(g.anchors, lo + u * P, gc) : 0xffffffffu;
        bool less = u < units && d < prefix, eq = u < units && d == prefix;
        int tl, te;
        int rl = nd_block_rank(less, wc, &tl);
        int re = nd_block_rank(eq, wc, &te);
        u64 key = ((u64)d << 32) | (u64)(uint32_t)u;
        if (less) skey[seen_less + rl] = key;
        if (eq && seen_eq + re < need) skey[n_less + seen_eq + re] = key;
        seen_less += tl;
        seen_eq += te;
      }
      int kp = 1;
      while (kp < m) kp <<= 1;
      for (int j = m + tid; j < kp; j += bd) skey[j] = ND_U64_MAX;
      __syncthreads();
      nd_block_bitonic(skey, kp);
      // expand: the units' anchors in index order, cut at k
      for (int j = tid; j < k; j += bd)
        cand[off + j] = (int32_t)(lo + (int64_t)(skey[j / P] & 0xffffffffu) * P + j % P);
      __syncthreads();
      off += k;
    }
    const float vg = nd_box_area(gt);
    for (int j = tid; j < g.k_total; j += bd) {
      float a[6];
#pragma unroll
      for (int k = 0; k < 6; ++k) a[k] = __ldg(g.anchors + (int64_t)cand[j] * 6 + k);
      ciou[j] = nd_box_iou_v(gt, a, vg, nd_box_area(a));
    }
    __syncthreads();
    if (tid == 0) {
      // the CPU's statistics: f64 sums in candidate order, mean = f32(sum) / n, unbiased variance in f64
      const int n = g.k_total;
      double sum = 0.0;
      for (int j = 0; j < n; ++j) sum += (double)ciou[j];
      float mean = (float)sum / (float)n;
      double md = sum / (double)n, var = 0.0;
      for (int j = 0; j < n; ++j) {
        double dv = (double)ciou[j] - md;
        var += ND_DMUL(dv, dv);
      }
      var /= ((double)n - 1.0);
      s_thr = mean + (float)sqrt(var);
    }
    __syncthreads();
    const float thr = s_thr;
    for (int j = tid; j < g.k_total; j += bd) {
      bool pos = ciou[j] >= thr;
      if (pos && g.center_in_gt) {
        float a[6], c[3];
#pragma unroll
        for (int k = 0; k < 6; ++k) a[k] = __ldg(g.anchors + (int64_t)cand[j] * 6 + k);
        nd_box_center(a, c);
        float m = fminf(fminf(fminf(fminf(fminf(c[0] - gt[0], c[1] - gt[1]), gt[2] - c[0]), gt[3] - c[1]), c[2] - gt[4]),
                        gt[5] - c[2]);
        pos = m > 0.01f;
      }
      if (!pos) cand[j] = -1;
    }
    __syncthreads();
  }
}

__global__ void atss_fill_kernel(NdAtssGeom g) {
  if (blockIdx.x == 0 && threadIdx.x < (unsigned)g.levels)
    g.grouped[threadIdx.x] = g.per_loc > 1 && g.count[threadIdx.x] % g.per_loc == 0;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.a; i += (int64_t)gridDim.x * blockDim.x) {
    g.matches[i] = -1;
    if (g.g > 0) g.best[i] = -INFINITY;
  }
}

// Clear grouped[l] when some anchor's centre differs (bitwise) from the first anchor of its position.
// Concurrent writers all store 0, so the race is benign.
__global__ void atss_groups_kernel(NdAtssGeom g) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.a; i += (int64_t)gridDim.x * blockDim.x) {
    int l = 0;
    while (l + 1 < g.levels && i >= g.start[l + 1]) ++l;
    if (!g.grouped[l]) continue;
    const int64_t first = g.start[l] + (i - g.start[l]) / g.per_loc * g.per_loc;
    if (first == i) continue;
    float a[6], b[6], ca[3], cb[3];
#pragma unroll
    for (int k = 0; k < 6; ++k) {
      a[k] = __ldg(g.anchors + i * 6 + k);
      b[k] = __ldg(g.anchors + first * 6 + k);
    }
    nd_box_center(a, ca);
    nd_box_center(b, cb);
    if (__float_as_uint(ca[0]) != __float_as_uint(cb[0]) || __float_as_uint(ca[1]) != __float_as_uint(cb[1]) ||
        __float_as_uint(ca[2]) != __float_as_uint(cb[2]))
      g.grouped[l] = 0;
  }
}

// One block: GTs in order, so an anchor positive for several GTs takes the highest IoU, the first GT on ties.
// Within one GT the candidates are distinct anchors, so its threads never collide.
__global__ void __launch_bounds__(256) atss_merge_kernel(NdAtssGeom g) {
  for (int64_t gi = 0; gi < g.g; ++gi) {
    for (int j = threadIdx.x; j < g.k_total; j += blockDim.x) {
      int32_t a = g.cand[gi * g.k_total + j];
      if (a < 0) continue;
      float v = g.cand_iou[gi * g.k_total + j];
      if (v > g.best[a]) {
        g.best[a] = v;
        g.matches[a] = (int32_t)gi;
      }
    }
    __syncthreads();
  }
}

NDK_EXPORT int NDK(det_atss)(const NdAtssGeom* p, void* stream) {
  const NdAtssGeom& g = *p;
  if (g.a == 0) return 0;
  int64_t b = (g.a + 255) / 256;
  ND_LAUNCH(atss_fill_kernel, (unsigned)(b < 65535 ? b : 65535), 256, 0, stream, g);
  NDK_LAUNCHED();
  if (g.g == 0 || g.k_total == 0) return 0;
  ND_LAUNCH(atss_groups_kernel, (unsigned)(b < 65535 ? b : 65535), 256, 0, stream, g);
  NDK_LAUNCHED();
  ND_LAUNCH(atss_candidates_kernel, (unsigned)(g.g < 65535 ? g.g : 65535), ND_ATSS_THREADS, 0, stream, g);
  NDK_LAUNCHED();
  ND_LAUNCH(atss_merge_kernel, 1, 256, 0, stream, g);
  NDK_LAUNCHED();
  return 0;
}
