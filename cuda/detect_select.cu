// Device selection for detection, mirroring crates/nndet-core/src/cpu/detect/select.rs (top_k: the k
// largest scores, sorted descending, ties to the lower index) as used by postprocess.rs (probabilities
// above a threshold) and sampler.rs (the hard-negative pool: background anchors ranked by their max logit,
// NaN logits skipped), plus the bitonic sort of 64-bit keys every detection kernel here shares.
//
// Top-k: every candidate gets the unique 64-bit key (order-preserving score bits << 32 | ~index), larger
// is better. An 8-pass radix select (8 bits a pass, per-block shared histograms merged with integer
// atomics: order-independent, so deterministic; the select step runs in one block and keeps its state on
// the device, so nothing syncs with the host) finds the k-th largest key T; one pass collects the keys
// >= T (exactly k, any order) and the bitonic sort orders them. When there are <= k candidates all are
// taken. Expected cost: 9 streaming passes over the n scores (L2-resident for n ~ 10^6) plus a sort of k.
//
// Sort: tiles of ND_SORT_TILE keys sorted in shared memory (direction by the global index, so tiles
// alternate), then for each larger stage the steps with stride >= ND_SORT_TILE as global compare-exchange
// kernels and the rest in shared memory again: log2(n/ND_SORT_TILE) * (log2(n/ND_SORT_TILE) + 3) / 2 + 1
// launches in all.
#include "detect_common.cuh"


static unsigned nd_grid(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return (unsigned)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

// ---- bitonic sort of u64 keys (ascending), length a power of two >= ND_SORT_TILE ----
__device__ __forceinline__ void nd_cmpswap(u64* s, int64_t i, int64_t l, bool asc) {
  u64 a = s[i], b = s[l];
  if ((a > b) == asc) {
    s[i] = b;
    s[l] = a;
  }
}

// Sort each tile with the global direction rule (so tiles alternate and the global merge can follow);
// `k_fixed` > 0: only the j < ND_SORT_TILE steps of stage k_fixed (the tail of a global merge).
__global__ void __launch_bounds__(256) bitonic_tile_kernel(u64* keys, int64_t k_fixed) {
  __shared__ u64 s[ND_SORT_TILE];
  const int64_t base = (int64_t)blockIdx.x * ND_SORT_TILE;
  for (int t = threadIdx.x; t < ND_SORT_TILE; t += blockDim.x) s[t] = keys[base + t];
  __syncthreads();
  for (int64_t k = k_fixed ? k_fixed : 2; k_fixed ? k == k_fixed : k <= ND_SORT_TILE; k <<= 1) {
    for (int j = (int)(k_fixed ? ND_SORT_TILE / 2 : k >> 1); j > 0; j >>= 1) {
      for (int t = threadIdx.x; t < ND_SORT_TILE / 2; t += blockDim.x) {
        int i = 2 * j * (t / j) + (t % j);
        nd_cmpswap(s, i, i + j, ((base + i) & k) == 0);
      }
      __syncthreads();
    }
  }
  for (int t = threadIdx.x; t < ND_SORT_TILE; t += blockDim.x) keys[base + t] = s[t];
}

__global__ void bitonic_step_kernel(u64* keys, int64_t half, int64_t j, int64_t k) {
  for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < half; t += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = 2 * j * (t / j) + (t % j);
    nd_cmpswap(keys, i, i + j, (i & k) == 0);
  }
}

int nd_det_sort_u64(u64* keys, int64_t n_pad, void* stream) {
  unsigned tiles = (unsigned)(n_pad / ND_SORT_TILE);
  ND_LAUNCH(bitonic_tile_kernel, tiles, 256, 0, stream, keys, (int64_t)0);
  NDK_LAUNCHED();
  for (int64_t k = 2 * ND_SORT_TILE; k <= n_pad; k <<= 1) {
    for (int64_t j = k >> 1; j >= ND_SORT_TILE; j >>= 1) {
      ND_LAUNCH(bitonic_step_kernel, nd_grid(n_pad / 2, 256), 256, 0, stream, keys, n_pad / 2, j, k);
      NDK_LAUNCHED();
    }
    ND_LAUNCH(bitonic_tile_kernel, tiles, 256, 0, stream, keys, k);
    NDK_LAUNCHED();
  }
  return 0;
}


// ---- top-k ----

// Score of i and whether it is a candidate.
__device__ __forceinline__ bool nd_topk_score(const NdTopkGeom& g, int64_t i, float* s) {
  if (g.mode == 0) {
    *s = g.scores[i];
    return *s > g.thr;
  }
  if (g.labels[i] != 0) return false;
  float m = -INFINITY;
  for (int k = 0; k < g.c; ++k) {
    float x = g.scores[i * g.c + k];
    if (x > m) m = x;
  }
  *s = m;
  return true;
}

__device__ __forceinline__ u64 nd_topk_key(float s, int64_t i) {
  return ((u64)nd_f32_key(s) << 32) | (u64)(0xffffffffu - (uint32_t)i);
}

__global__ void topk_init_kernel(NdTopkGeom g) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.k_pad; i += (int64_t)gridDim.x * blockDim.x)
    g.keys[i] = ND_U64_MAX;
  if (blockIdx.x == 0) {
    if (threadIdx.x < 256) g.hist[threadIdx.x] = 0;
    if (threadIdx.x == 0) {
      g.state[0] = 0;
      g.state[1] = 0;
      g.state[2] = (u64)g.k;
      g.state[3] = 0;
      g.slot[0] = 0;
    }
  }
}

__global__ void __launch_bounds__(256) topk_hist_kernel(NdTopkGeom g, int shift) {
  __shared__ unsigned int h[256];
  if (g.state[3]) return;  // fewer candidates than k: all are taken
  const u64 prefix = g.state[0], mask = g.state[1];
  h[threadIdx.x] = 0;
  __syncthreads();
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.n; i += (int64_t)gridDim.x * blockDim.x) {
    float s;
    if (!nd_topk_score(g, i, &s)) continue;
    u64 key = nd_topk_key(s, i);
    if ((key & mask) == prefix) atomicAdd(&h[(unsigned)(key >> shift) & 255u], 1u);
  }
  __syncthreads();
  if (h[threadIdx.x]) atomicAdd(&g.hist[threadIdx.x], h[threadIdx.x]);
}

// One block: pick the bin holding the need-th largest key, from the top; clear the histogram.
__global__ void __launch_bounds__(256) topk_select_kernel(NdTopkGeom g, int shift) {
  if (threadIdx.x == 0 && !g.state[3]) {
    u64 need = g.state[2];
    if (shift == 56) {
      u64 total = 0;
      for (int b = 0; b < 256; ++b) total += g.hist[b];
      if (total <= need) g.state[3] = 1;
    }
    if (!g.state[3]) {
      u64 cum = 0;
      for (int b = 255; b >= 0; --b) {
        if (cum + g.hist[b] >= need) {
          g.state[0] |= (u64)b << shift;
          g.state[1] |= (u64)255 << shift;
          g.state[2] = need - cum;
          break;
        }
        cum += g.hist[b];
      }
    }
  }
  __syncthreads();
  g.hist[threadIdx.x] = 0;
}

__global__ void topk_collect_kernel(NdTopkGeom g) {
  const bool all = g.state[3] != 0;
  const u64 cut = g.state[0];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.n; i += (int64_t)gridDim.x * blockDim.x) {
    float s;
    if (!nd_topk_score(g, i, &s)) continue;
    u64 key = nd_topk_key(s, i);
    if (all || key >= cut) g.keys[atomicAdd(g.slot, 1ull)] = ~key;  // ascending sort = best first
  }
}

__global__ void topk_out_kernel(NdTopkGeom g) {
  for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < g.k; j += (int64_t)gridDim.x * blockDim.x) {
    if (j == 0) g.count[0] = (int32_t)g.slot[0];
    u64 key = g.keys[j];
    if (key == ND_U64_MAX) continue;
    int64_t i = (int64_t)(key & 0xffffffffu);  // ~(~index) of the stored ~key
    float s;
    nd_topk_score(g, i, &s);
    g.out_scores[j] = s;
    g.out_idx[j] = (int32_t)i;
  }
}

NDK_EXPORT int NDK(det_topk)(const NdTopkGeom* p, void* stream) {
  const NdTopkGeom& g = *p;
  ND_LAUNCH(topk_init_kernel, nd_grid(g.k_pad, 256), 256, 0, stream, g);
  NDK_LAUNCHED();
  const unsigned blocks = nd_grid(g.n, 256) < 1024 ? nd_grid(g.n, 256) : 1024;
  for (int shift = 56; shift >= 0; shift -= 8) {
    ND_LAUNCH(topk_hist_kernel, blocks, 256, 0, stream, g, shift);
    NDK_LAUNCHED();
    ND_LAUNCH(topk_select_kernel, 1, 256, 0, stream, g, shift);
    NDK_LAUNCHED();
  }
  ND_LAUNCH(topk_collect_kernel, blocks, 256, 0, stream, g);
  NDK_LAUNCHED();
  int e = nd_det_sort_u64(g.keys, g.k_pad, stream);
  if (e) return e;
  ND_LAUNCH(topk_out_kernel, nd_grid(g.k, 256), 256, 0, stream, g);
  NDK_LAUNCHED();
  return 0;
}
