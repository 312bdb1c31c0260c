// Greedy 3D NMS (cpu/detect/nms.rs nms_plain, with nnDetection's class shift and the weighted variant) and
// weighted box clustering (cpu/detect/wbc.rs) on the device, by the bitmask algorithm:
//  1. keys (score desc, index asc; score*weight for weighted NMS) sorted by the bitonic sort of
//     detect_select.cu;
//  2. boxes gathered in rank order (NMS with labels: shifted by label * (max coordinate + 1) as the CPU);
//  3. mask[r][c] (64-bit words, 64-box column tiles, upper triangle only) = bit j set when !(IoU(r, j) <= thr)
//     (IoU > thr or NaN) for ranks j > r; WBC also requires equal labels (its classes are independent);
//  4. the sequential greedy scan on the device in ONE block: per 64-box column tile, lane 0 resolves the
//     tile's own 64 candidates from the diagonal words, then all threads OR the kept rows into the removed
//     words of the later tiles (coalesced row reads). Kept on the device so the whole op stays asynchronous
//     on its stream (no download, no host sync); its cost is O(kept * n / 64) word reads, like the host scan.
// WBC then: a kept box's cluster = the boxes it removed first whose IoU is > thr (not NaN): one block per
// kept box gathers them in rank order and thread 0 sums them in f64 in the CPU's order (exact same sums);
// the clusters are re-sorted by (label, keep order) and compacted (output grouped by label as the CPU).
// Limits: n <= ND_NMS_MAX (the removed words of the scan live in shared memory); the mask takes
// n * ceil(n/64) * 8 bytes of workspace (1.3 GB at n = 10^5): callers reduce candidates first (top-k).
#include "detect_common.cuh"

#define ND_NMS_MAX_CB 2048
#define ND_NMS_MAX (ND_NMS_MAX_CB * 64)



static unsigned nd_grid(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return (unsigned)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

// ---- preparation ----
// step = max coordinate + 1 (nnDetection batched_nms), one block.
__global__ void __launch_bounds__(256) label_step_kernel(NdNmsGeom g) {
  __shared__ float red[256];
  float m = -INFINITY;
  for (int64_t e = threadIdx.x; e < g.n * 6; e += blockDim.x) m = fmaxf(m, g.boxes[e]);
  red[threadIdx.x] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
    __syncthreads();
  }
  if (threadIdx.x == 0) g.step[0] = red[0] + 1.0f;
}

__global__ void nms_keys_kernel(NdNmsGeom g) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.n_pad; i += (int64_t)gridDim.x * blockDim.x) {
    u64 key = ND_U64_MAX;
    if (i < g.n) {
      float s = g.scores[i];
      if (g.weights && !g.wbc) s = s * g.weights[i];
      key = nd_desc_key(s, (uint32_t)i);
    }
    g.keys[i] = key;
  }
}

__global__ void nms_gather_kernel(NdNmsGeom g) {
  const bool shift = g.labels && !g.wbc;
  for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < g.n; r += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = (int64_t)(g.keys[r] & 0xffffffffu);
    float b[6];
    float off = shift ? ND_FMUL((float)g.labels[i], g.step[0]) : 0.0f;
#pragma unroll
    for (int k = 0; k < 6; ++k) {
      b[k] = g.boxes[i * 6 + k];
      if (shift) b[k] += off;
      g.sbox[r * 6 + k] = b[k];
    }
    g.svol[r] = nd_box_area(b);
    g.slab[r] = g.labels ? g.labels[i] : 0;
  }
}

// ---- the suppression mask: block (64, 4) = one 64-box column tile against 4 row tiles, one row a thread ----
__global__ void __launch_bounds__(256) nms_mask_kernel(NdNmsGeom g) {
  const int cb = blockIdx.x, rb = blockIdx.y * 4 + threadIdx.y;
  __shared__ float cbox[64][6];
  __shared__ float cvol[64];
  __shared__ int clab[64];
  const int t = threadIdx.x;
  const int64_t jt = (int64_t)cb * 64 + t;
  if (threadIdx.y == 0 && jt < g.n) {
#pragma unroll
    for (int k = 0; k < 6; ++k) cbox[t][k] = g.sbox[jt * 6 + k];
    cvol[t] = g.svol[jt];
    clab[t] = g.slab[jt];
  }
  __syncthreads();
  const int64_t r = (int64_t)rb * 64 + t;
  if (cb < rb || r >= g.n) return;  // lower triangle: never read by the scan
  float rbox[6];
#pragma unroll
  for (int k = 0; k < 6; ++k) rbox[k] = g.sbox[r * 6 + k];
  const float rv = g.svol[r];
  const int rl = g.slab[r];
  const int cols = (int)(g.n - (int64_t)cb * 64 < 64 ? g.n - (int64_t)cb * 64 : 64);
  u64 bits = 0;
  for (int c = cb == rb ? t + 1 : 0; c < cols; ++c) {
    float v = nd_box_iou_v(rbox, cbox[c], rv, cvol[c]);
    bool sup = !(v <= g.thr) && (!g.wbc || clab[c] == rl);
    bits |= (u64)sup << c;
  }
  g.mask[r * g.cbn + cb] = bits;
}

// ---- the greedy scan, one block ----
__global__ void __launch_bounds__(256) nms_scan_kernel(NdNmsGeom g) {
  __shared__ u64 removed[ND_NMS_MAX_CB];
  __shared__ u64 diag[64];
  __shared__ u64 kept_bits;
  __shared__ int nkeep;
  for (int w = threadIdx.x; w < g.cbn; w += blockDim.x) removed[w] = 0;
  if (g.wbc)
    for (int64_t r = threadIdx.x; r < g.n; r += blockDim.x) g.owner[r] = -1;
  if (threadIdx.x == 0) nkeep = 0;
  __syncthreads();
  for (int cb = 0; cb < g.cbn; ++cb) {
    const int rows = (int)(g.n - (int64_t)cb * 64 < 64 ? g.n - (int64_t)cb * 64 : 64);
    if (threadIdx.x < (unsigned)rows) diag[threadIdx.x] = g.mask[((int64_t)cb * 64 + threadIdx.x) * g.cbn + cb];
    __syncthreads();
    if (threadIdx.x == 0) {
      u64 w = removed[cb], kb = 0;
      int nk = nkeep;
      for (int j = 0; j < rows; ++j) {
        if ((w >> j) & 1ull) continue;
        const int r = cb * 64 + j;
        kb |= 1ull << j;
        g.ranks[nk] = r;
        if (!g.wbc) g.keep[nk] = (int32_t)(g.keys[r] & 0xffffffffu);
        ++nk;
        u64 row = diag[j];
        if (g.wbc) {
          g.owner[r] = r;
          for (u64 nb = row & ~w; nb; nb &= nb - 1) g.owner[cb * 64 + __ffsll((long long)nb) - 1] = r;
        }
        w |= row;
      }
      removed[cb] = w;
      kept_bits = kb;
      nkeep = nk;
    }
    __syncthreads();
    const u64 kb0 = kept_bits;
    for (int c = cb + 1 + threadIdx.x; c < g.cbn; c += blockDim.x) {
      u64 w = removed[c];
      for (u64 kb = kb0; kb; kb &= kb - 1) {
        const int r = cb * 64 + __ffsll((long long)kb) - 1;
        u64 row = g.mask[(int64_t)r * g.cbn + c];
        if (g.wbc)
          for (u64 nb = row & ~w; nb; nb &= nb - 1) g.owner[c * 64 + __ffsll((long long)nb) - 1] = r;
        w |= row;
      }
      removed[c] = w;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    if (g.wbc) g.nkept[0] = nkeep;
    else g.count[0] = nkeep;
  }
}

// ---- WBC: one block per kept box ----
#define WBC_THREADS 256
__global__ void __launch_bounds__(WBC_THREADS) wbc_cluster_kernel(NdNmsGeom g) {
  __shared__ float la[WBC_THREADS], las[WBC_THREADS], lne[WBC_THREADS], lb[WBC_THREADS][6];
  __shared__ int wc[WBC_THREADS / 32];
  const int nk = g.nkept[0];
  for (int64_t t = blockIdx.x; t < g.n; t += gridDim.x) {
    if (t >= nk) {
      if (threadIdx.x == 0) g.keys2[t] = ND_U64_MAX;
      continue;
    }
    const int r = g.ranks[t];
    float top[6];
#pragma unroll
    for (int k = 0; k < 6; ++k) top[k] = g.sbox[(int64_t)r * 6 + k];
    const float vt = g.svol[r];
    double sw = 0, sws = 0, nsum = 0, acc[6] = {0, 0, 0, 0, 0, 0};
    int64_t cnt = 0;
    for (int64_t base = r; base < g.n; base += blockDim.x) {
      const int64_t j = base + threadIdx.x;
      bool member = j < g.n && g.owner[j] == r;
      float v = 0.0f, bj[6];
      if (member) {
#pragma unroll
        for (int k = 0; k < 6; ++k) bj[k] = g.sbox[j * 6 + k];
        v = nd_box_iou_v(top, bj, vt, g.svol[j]);
        member = v > g.thr;
      }
      int total;
      int pos = nd_block_rank(member, wc, &total);
      if (member) {
        int64_t i = (int64_t)(g.keys[j] & 0xffffffffu);
        float a = v * g.weights[i];
        la[pos] = a;
        las[pos] = a * g.scores[i];
        lne[pos] = g.n_exp[i];
#pragma unroll
        for (int k = 0; k < 6; ++k) lb[pos][k] = bj[k];
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        for (int q = 0; q < total; ++q) {
          sw += (double)la[q];
          sws += (double)las[q];
          nsum += (double)lne[q];
          ++cnt;
#pragma unroll
          for (int k = 0; k < 6; ++k) acc[k] += ND_DMUL((double)las[q], (double)lb[q][k]);
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      u64 key = ND_U64_MAX;
      if (cnt > 0) {
        double n_expected = nsum / (double)cnt;
        double missing = n_expected - (double)cnt;
        if (missing < 0.0) missing = 0.0;
        float score = (float)(sws / (sw + ND_DMUL(missing, sw / (double)cnt)));
        g.rec_score[t] = score;
#pragma unroll
        for (int k = 0; k < 6; ++k) g.rec_box[t * 6 + k] = (float)(acc[k] / sws);
        if (score > g.score_thr) key = ((u64)((uint32_t)g.slab[r] ^ 0x80000000u) << 32) | (u64)t;
      }
      g.keys2[t] = key;
    }
  }
}

__global__ void wbc_pad_kernel(NdNmsGeom g) {
  for (int64_t i = g.n + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.n_pad; i += (int64_t)gridDim.x * blockDim.x)
    g.keys2[i] = ND_U64_MAX;
}

// Emitted clusters sorted by (label, keep order) -> outputs; count = number of emitted keys.
__global__ void wbc_out_kernel(NdNmsGeom g) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.n; i += (int64_t)gridDim.x * blockDim.x) {
    u64 key = g.keys2[i];
    if (i == 0 && key == ND_U64_MAX) g.count[0] = 0;
    if (key == ND_U64_MAX) continue;
    if (i + 1 == g.n || g.keys2[i + 1] == ND_U64_MAX) g.count[0] = (int32_t)(i + 1);
    int64_t t = (int64_t)(key & 0xffffffffu);
#pragma unroll
    for (int k = 0; k < 6; ++k) g.out_boxes[i * 6 + k] = g.rec_box[t * 6 + k];
    g.out_scores[i] = g.rec_score[t];
    g.out_labels[i] = (int32_t)((uint32_t)(key >> 32) ^ 0x80000000u);
  }
}

__global__ void zero_count_kernel(int32_t* count) {
  if (threadIdx.x == 0) count[0] = 0;
}

static int nd_nms_common(const NdNmsGeom& g, void* stream) {
  if (g.labels && !g.wbc) {
    ND_LAUNCH(label_step_kernel, 1, 256, 0, stream, g);
    NDK_LAUNCHED();
  }
  ND_LAUNCH(nms_keys_kernel, nd_grid(g.n_pad, 256), 256, 0, stream, g);
  NDK_LAUNCHED();
  int e = nd_det_sort_u64(g.keys, g.n_pad, stream);
  if (e) return e;
  ND_LAUNCH(nms_gather_kernel, nd_grid(g.n, 256), 256, 0, stream, g);
  NDK_LAUNCHED();
  ND_LAUNCH(nms_mask_kernel, dim3(g.cbn, (g.cbn + 3) / 4), dim3(64, 4), 0, stream, g);
  NDK_LAUNCHED();
  ND_LAUNCH(nms_scan_kernel, 1, 256, 0, stream, g);
  NDK_LAUNCHED();
  return 0;
}

// NMS (wbc = 0): keep[0..count) = kept indices in keep order. The Rust wrapper checks n <= ND_NMS_MAX.
NDK_EXPORT int NDK(det_nms)(const NdNmsGeom* p, void* stream) {
  NdNmsGeom g = *p;
  g.wbc = 0;
  if (g.n == 0) {
    ND_LAUNCH(zero_count_kernel, 1, 256, 0, stream, g.count);
    NDK_LAUNCHED();
    return 0;
  }
  return nd_nms_common(g, stream);
}

NDK_EXPORT int NDK(det_wbc)(const NdNmsGeom* p, void* stream) {
  NdNmsGeom g = *p;
  g.wbc = 1;
  if (g.n == 0) {
    ND_LAUNCH(zero_count_kernel, 1, 256, 0, stream, g.count);
    NDK_LAUNCHED();
    return 0;
  }
  int e = nd_nms_common(g, stream);
  if (e) return e;
  ND_LAUNCH(wbc_cluster_kernel, nd_grid(g.n, 1), WBC_THREADS, 0, stream, g);
  NDK_LAUNCHED();
  ND_LAUNCH(wbc_pad_kernel, nd_grid(g.n_pad - g.n, 256), 256, 0, stream, g);
  NDK_LAUNCHED();
  e = nd_det_sort_u64(g.keys2, g.n_pad, stream);
  if (e) return e;
  ND_LAUNCH(wbc_out_kernel, nd_grid(g.n, 256), 256, 0, stream, g);
  NDK_LAUNCHED();
  return 0;
}
