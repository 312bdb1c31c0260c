// Detection box primitives on the device, mirroring crates/nndet-core/src/cpu/detect/boxes.rs (pairwise
// IoU / GIoU / centre distance, elementwise, volumes and centres, clipping) and anchors.rs (anchor
// generation per level, BoxCoderND encode/decode with its clamp). Boxes [n, 6] f32 (x1, y1, x2, y2, z1,
// z2); deltas [n, 6] (dx, dy, dw, dh, dz, dd). Same f32 operation order as the CPU, products never
// contracted into fma (detect_common.cuh), so IoUs, distances and anchors are bit-identical; encode/decode
// differ only by the ulps of the device's logf/expf.
//
// Expected performance: pairwise is bound by the n*m f32 store (coalesced 128-byte rows per warp, b-tile in
// shared memory); the others are single-pass streaming kernels.
#include "detect_common.cuh"

struct NdPairGeom {
  int64_t n, m;  // boxes in a, b
  int32_t kind;  // 0 IoU, 1 GIoU, 2 centre distance
  float eps;     // GIoU eps on the enclosing volume
};
static_assert(sizeof(NdPairGeom) == 24, "layout shared with crates/nndet-core/src/cuda/detect.rs");

#define PAIR_TX 32
#define PAIR_TY 8
#define PAIR_ROWS 4

// out[i*m + j] = f(a_i, b_j). Block (32, 8): a tile of 32 b-boxes in shared memory, PAIR_ROWS rows per thread.
__global__ void __launch_bounds__(PAIR_TX * PAIR_TY)
    pairwise_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out, NdPairGeom g) {
  __shared__ float sb[PAIR_TX][6];
  __shared__ float sv[PAIR_TX];
  __shared__ float sc[PAIR_TX][3];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t j0 = (int64_t)blockIdx.x * PAIR_TX;
  int t = ty * PAIR_TX + tx;
  if (t < PAIR_TX * 6) {
    int64_t jj = j0 + t / 6;
    sb[t / 6][t % 6] = jj < g.m ? __ldg(b + jj * 6 + t % 6) : 0.0f;
  }
  __syncthreads();
  if (t < PAIR_TX) {
    sv[t] = nd_box_area(sb[t]);
    nd_box_center(sb[t], sc[t]);
  }
  __syncthreads();
  const int64_t j = j0 + tx;
  for (int64_t i0 = (int64_t)blockIdx.y * PAIR_TY * PAIR_ROWS; i0 < g.n; i0 += (int64_t)gridDim.y * PAIR_TY * PAIR_ROWS) {
#pragma unroll
    for (int r = 0; r < PAIR_ROWS; ++r) {
      int64_t i = i0 + r * PAIR_TY + ty;
      if (i >= g.n || j >= g.m) continue;
      float ai[6];
#pragma unroll
      for (int k = 0; k < 6; ++k) ai[k] = __ldg(a + i * 6 + k);
      float v;
      if (g.kind == 0) {
        v = nd_box_iou_v(ai, sb[tx], nd_box_area(ai), sv[tx]);
      } else if (g.kind == 1) {
        v = nd_box_giou(ai, sb[tx], g.eps);
      } else {
        float ca[3];
        nd_box_center(ai, ca);
        v = nd_center_dist(ca, sc[tx]);
      }
      out[i * g.m + j] = v;
    }
  }
}

NDK_EXPORT int NDK(det_pairwise)(const float* a, const float* b, float* out, const NdPairGeom* g, void* stream) {
  if (g->n == 0 || g->m == 0) return 0;
  int64_t gy = (g->n + PAIR_TY * PAIR_ROWS - 1) / (PAIR_TY * PAIR_ROWS);
  dim3 grid((unsigned)((g->m + PAIR_TX - 1) / PAIR_TX), (unsigned)(gy < 65535 ? gy : 65535));
  ND_LAUNCH(pairwise_kernel, grid, dim3(PAIR_TX, PAIR_TY), 0, stream, a, b, out, *g);
  NDK_LAUNCHED();
  return 0;
}

// out[i] = f(a_i, b_i).
__global__ void elementwise_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out,
                                   NdPairGeom g) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.n; i += (int64_t)gridDim.x * blockDim.x) {
    float ai[6], bi[6];
#pragma unroll
    for (int k = 0; k < 6; ++k) {
      ai[k] = __ldg(a + i * 6 + k);
      bi[k] = __ldg(b + i * 6 + k);
    }
    float v;
    if (g.kind == 0) {
      v = nd_box_iou_v(ai, bi, nd_box_area(ai), nd_box_area(bi));
    } else if (g.kind == 1) {
      v = nd_box_giou(ai, bi, g.eps);
    } else {
      float ca[3], cb[3];
      nd_box_center(ai, ca);
      nd_box_center(bi, cb);
      v = nd_center_dist(ca, cb);
    }
    out[i] = v;
  }
}

static unsigned nd_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return (unsigned)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

NDK_EXPORT int NDK(det_elementwise)(const float* a, const float* b, float* out, const NdPairGeom* g, void* stream) {
  if (g->n == 0) return 0;
  ND_LAUNCH(elementwise_kernel, nd_blocks(g->n, 256), 256, 0, stream, a, b, out, *g);
  NDK_LAUNCHED();
  return 0;
}

// areas [n], centers [n, 3].
__global__ void areas_centers_kernel(const float* __restrict__ b, float* __restrict__ areas, float* __restrict__ centers,
                                     int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float bx[6];
#pragma unroll
    for (int k = 0; k < 6; ++k) bx[k] = __ldg(b + i * 6 + k);
    areas[i] = nd_box_area(bx);
    nd_box_center(bx, centers + i * 3);
  }
}

NDK_EXPORT int NDK(det_areas_centers)(const float* b, float* areas, float* centers, int64_t n, void* stream) {
  if (n == 0) return 0;
  ND_LAUNCH(areas_centers_kernel, nd_blocks(n, 256), 256, 0, stream, b, areas, centers, n);
  NDK_LAUNCHED();
  return 0;
}

struct NdClipGeom {
  int64_t n;
  float shape[3];
};
static_assert(sizeof(NdClipGeom) == 24, "layout shared with crates/nndet-core/src/cuda/detect.rs");

// clip_boxes_to_image in place, one thread per coordinate (coalesced): x to [0, s0], y to [0, s1], z to [0, s2].
__global__ void clip_kernel(float* __restrict__ b, NdClipGeom g) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < g.n * 6; e += (int64_t)gridDim.x * blockDim.x) {
    int k = (int)(e % 6);
    float s = k >= 4 ? g.shape[2] : ((k & 1) ? g.shape[1] : g.shape[0]);  // no dynamic index: no local memory
    b[e] = nd_minp(nd_maxp(b[e], 0.0f), s);
  }
}

NDK_EXPORT int NDK(det_clip)(float* b, const NdClipGeom* g, void* stream) {
  if (g->n == 0) return 0;
  ND_LAUNCH(clip_kernel, nd_blocks(g->n * 6, 256), 256, 0, stream, b, *g);
  NDK_LAUNCHED();
  return 0;
}

// ---- anchors (AnchorGenerator3DS): level-major, then position (axis 2 fastest), then cell anchor ----
#define ND_MAX_LEVELS 8
#define ND_MAX_SIZES 96

struct NdAnchorLevel {
  int64_t start;             // first anchor of the level in the output
  int32_t nw, nh, nd;        // sizes per axis
  int32_t size_off;          // widths at sizes[size_off..], then heights, then depths
  int32_t fmap[3], stride[3];
};

struct NdAnchorGeom {
  int32_t levels;
  int32_t n_sizes;
  float sizes[ND_MAX_SIZES];
  NdAnchorLevel lv[ND_MAX_LEVELS];
};
static_assert(sizeof(NdAnchorGeom) == 776, "layout shared with crates/nndet-core/src/cuda/detect.rs");

// One thread per output float of one level (coalesced stores): shift(position) + cell(anchor).
__global__ void anchors_kernel(float* __restrict__ out, NdAnchorGeom g, int l) {
  const NdAnchorLevel L = g.lv[l];
  const int64_t per = (int64_t)L.nw * L.nh * L.nd;
  const int64_t count = per * L.fmap[0] * L.fmap[1] * L.fmap[2];
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < count * 6; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t a = e / 6;
    int k = (int)(e % 6);
    int64_t p = a / per, c = a % per;
    int64_t f12 = (int64_t)L.fmap[1] * L.fmap[2];
    int64_t ix = p / f12, iy = (p / L.fmap[2]) % L.fmap[1], iz = p % L.fmap[2];
    int64_t cw = c / ((int64_t)L.nh * L.nd), ch = (c / L.nd) % L.nh, cd = c % L.nd;
    float half;
    float shift;
    if (k == 0 || k == 2) {
      half = g.sizes[L.size_off + cw] / 2.0f;
      shift = (float)(ix * L.stride[0]);
    } else if (k == 1 || k == 3) {
      half = g.sizes[L.size_off + L.nw + ch] / 2.0f;
      shift = (float)(iy * L.stride[1]);
    } else {
      half = g.sizes[L.size_off + L.nw + L.nh + cd] / 2.0f;
      shift = (float)(iz * L.stride[2]);
    }
    float cell = (k == 0 || k == 1 || k == 4) ? -half : half;
    out[(L.start + a) * 6 + k] = shift + cell;
  }
}

NDK_EXPORT int NDK(det_anchors)(float* out, const NdAnchorGeom* g, void* stream) {
  for (int l = 0; l < g->levels; ++l) {
    const NdAnchorLevel& L = g->lv[l];
    int64_t count = (int64_t)L.nw * L.nh * L.nd * L.fmap[0] * L.fmap[1] * L.fmap[2];
    if (count == 0) continue;
    ND_LAUNCH(anchors_kernel, nd_blocks(count * 6, 256), 256, 0, stream, out, *g, l);
    NDK_LAUNCHED();
  }
  return 0;
}

// ---- BoxCoderND ----
struct NdCoderGeom {
  int64_t n;
  float w[6];  // (wx, wy, ww, wh, wz, wd)
  float clip;  // decode: upper clamp of dw/ww (log(1000/16) by default)
};
static_assert(sizeof(NdCoderGeom) == 40, "layout shared with crates/nndet-core/src/cuda/detect.rs");

__global__ void encode_kernel(const float* __restrict__ gt, const float* __restrict__ anc, float* __restrict__ out,
                              NdCoderGeom g) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.n; i += (int64_t)gridDim.x * blockDim.x) {
    const float* gb = gt + i * 6;
    const float* ab = anc + i * 6;
#pragma unroll
    for (int ax = 0; ax < 3; ++ax) {
      int lo, hi, dc, ds;
      nd_axis_cols(ax, lo, hi, dc, ds);
      float aw = __ldg(ab + hi) - __ldg(ab + lo);
      float ac = __ldg(ab + lo) + ND_FMUL(0.5f, aw);
      float gw = __ldg(gb + hi) - __ldg(gb + lo);
      float gc = __ldg(gb + lo) + ND_FMUL(0.5f, gw);
      out[i * 6 + dc] = ND_FMUL(g.w[dc], gc - ac) / aw;
      out[i * 6 + ds] = ND_FMUL(g.w[ds], logf(gw / aw));
    }
  }
}

NDK_EXPORT int NDK(det_encode)(const float* gt, const float* anc, float* out, const NdCoderGeom* g, void* stream) {
  if (g->n == 0) return 0;
  ND_LAUNCH(encode_kernel, nd_blocks(g->n, 256), 256, 0, stream, gt, anc, out, *g);
  NDK_LAUNCHED();
  return 0;
}

__global__ void decode_kernel(const float* __restrict__ d, const float* __restrict__ anc, float* __restrict__ out,
                              NdCoderGeom g) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.n; i += (int64_t)gridDim.x * blockDim.x)
    nd_decode_row(d + i * 6, anc + i * 6, g.w, g.clip, out + i * 6);
}

NDK_EXPORT int NDK(det_decode)(const float* d, const float* anc, float* out, const NdCoderGeom* g, void* stream) {
  if (g->n == 0) return 0;
  ND_LAUNCH(decode_kernel, nd_blocks(g->n, 256), 256, 0, stream, d, anc, out, *g);
  NDK_LAUNCHED();
  return 0;
}

// ---- remove_small_boxes: ascending indices of boxes with every side >= min_size (a NaN side fails) ----
// One block walks the boxes in 256-box tiles and compacts them in order with block ballots (n is at most
// the post-processing candidates, ~10^3-10^4: one block is enough and keeps the order without a scan pass).
__global__ void __launch_bounds__(256) remove_small_kernel(const float* __restrict__ b, int64_t n, float min_size,
                                                          int32_t* __restrict__ keep, int32_t* __restrict__ count) {
  __shared__ int wc[8];
  int64_t kept = 0;
  for (int64_t base = 0; base < n; base += blockDim.x) {
    const int64_t i = base + threadIdx.x;
    bool ok = false;
    if (i < n) {
      const float* x = b + i * 6;
      ok = (x[2] - x[0]) >= min_size && (x[3] - x[1]) >= min_size && (x[5] - x[4]) >= min_size;
    }
    int total;
    int r = nd_block_rank(ok, wc, &total);
    if (ok) keep[kept + r] = (int32_t)i;
    kept += total;
  }
  if (threadIdx.x == 0) count[0] = (int32_t)kept;
}

NDK_EXPORT int NDK(det_remove_small)(const float* b, int64_t n, float min_size, int32_t* keep, int32_t* count,
                                     void* stream) {
  ND_LAUNCH(remove_small_kernel, 1, 256, 0, stream, b, n, min_size, keep, count);
  NDK_LAUNCHED();
  return 0;
}
