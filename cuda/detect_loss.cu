// Detection losses with gradients on the device, mirroring crates/nndet-core/src/cpu/detect/loss.rs and
// seg_loss.rs (nnDetection BCEWithLogitsLossOneHot, GIoULoss(sum, eps), the v001 head loss over sampled
// rows, and the fg/bg segmentation loss 0.5 * CE + 0.5 * (1 - soft Dice)):
//  - BCE: one thread per (row, class), f32 with the stable forms (log1p(exp(-|x|)); sigmoid(x) - t as
//    -sigmoid(-x) for t = 1, so small gradients keep their relative precision);
//  - GIoU / decode: one thread per sampled positive, the CPU's f64 arithmetic (a few hundred flops per
//    positive: negligible; sm_80/90 run f64 at half the f32 rate);
//  - seg loss: two passes over the voxels (per-block statistics, one finalize block, then the gradient).
// Reductions: per-block f32 sums in a fixed shuffle tree, partials summed by one block in a fixed order,
// so results do not depend on scheduling. Gradient scatters into sampled rows use atomicAdd only so that a
// row sampled twice accumulates like the CPU's `+=` (without duplicates each address gets one add).
#include "detect_common.cuh"

#define ND_LOSS_THREADS 256
#define ND_LOSS_MAX_BLOCKS 256
#define ND_SEG_MAX_BLOCKS 64

static int nd_loss_blocks(int64_t n, int cap) {
  int64_t b = (n + ND_LOSS_THREADS - 1) / ND_LOSS_THREADS;
  return (int)(b < 1 ? 1 : (b > cap ? cap : b));
}

// Sum partials[0..n) in order (one thread), write scale * sum, or NaN when `nan`.
__global__ void finalize_sum_kernel(const float* partials, int n, float scale, int nan, float* out) {
  if (threadIdx.x != 0) return;
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += partials[i];
  *out = nan ? NAN : s * scale;
}

// ---- BCE with logits over rows (all rows, or pos then neg); label L -> one-hot column L-1 ----
struct NdBceArgs {
  int64_t rows;     // rows taken
  int64_t n_first;  // rows from `first` (the rest from `second`); both null: row r itself
  int64_t bound;    // sampled row indices outside [0, bound) are skipped (the device cannot report them)
  int32_t c;
  int32_t scatter;  // 1: grad += via atomicAdd (sampled rows); 0: grad = (every row once)
  const int32_t* first;
  const int32_t* second;
  const float* logits;
  const int32_t* labels;
  float* grad;
  float* partials;  // [ND_LOSS_MAX_BLOCKS]
};

__global__ void __launch_bounds__(ND_LOSS_THREADS) bce_kernel(NdBceArgs g, float inv_n) {
  __shared__ float scratch[32];
  float acc = 0.0f;
  const int64_t total = g.rows * g.c;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = e / g.c;
    int k = (int)(e % g.c);
    int64_t row = g.first ? (r < g.n_first ? g.first[r] : g.second[r - g.n_first]) : r;
    if (row < 0 || row >= g.bound) continue;
    float x = g.logits[row * g.c + k];
    bool t = g.labels[row] == k + 1;
    acc += fmaxf(x, 0.0f) - (t ? x : 0.0f) + log1pf(expf(-fabsf(x)));
    float d = (t ? -nd_sigmoid(-x) : nd_sigmoid(x)) * inv_n;
    if (g.scatter) atomicAdd(g.grad + row * g.c + k, d);
    else g.grad[row * g.c + k] = d;
  }
  float s = nd_block_sum(acc, scratch);
  if (threadIdx.x == 0) g.partials[blockIdx.x] = s;
}

static int nd_bce(const NdBceArgs& a, float* loss, void* stream) {
  int nb = nd_loss_blocks(a.rows * a.c, ND_LOSS_MAX_BLOCKS);
  // NOTE: 1/n in f32; the CPU divides by n in f64 (relative difference <= 1 ulp).
  float inv_n = 1.0f / (float)(a.rows * a.c);
  ND_LAUNCH(bce_kernel, nb, ND_LOSS_THREADS, 0, stream, a, inv_n);
  NDK_LAUNCHED();
  ND_LAUNCH(finalize_sum_kernel, 1, ND_LOSS_THREADS, 0, stream, (const float*)a.partials, nb, inv_n, (int)(a.rows == 0), loss);
  NDK_LAUNCHED();
  return 0;
}

struct NdBceGeom {
  int64_t rows;
  int32_t c;
  int32_t pad_;
  const float* logits;    // [rows, c]
  const int32_t* labels;  // [rows] in 0..=c
  float* grad;            // [rows, c]
  float* partials;        // workspace [ND_LOSS_MAX_BLOCKS]
  float* loss;            // [1]
};
static_assert(sizeof(NdBceGeom) == 56, "layout shared with crates/nndet-core/src/cuda/detect.rs");

NDK_EXPORT int NDK(det_bce)(const NdBceGeom* p, void* stream) {
  NdBceArgs a = {p->rows, 0, p->rows, p->c, 0, nullptr, nullptr, p->logits, p->labels, p->grad, p->partials};
  return nd_bce(a, p->loss, stream);
}

// ---- GIoU and its gradient (f64, the CPU's operation order) ----
__device__ __forceinline__ double nd_share(bool a_wins, bool tie) { return tie ? 0.5 : (a_wins ? 1.0 : 0.0); }

__device__ double nd_giou_fwd_bwd(const double p[6], const double t[6], double eps, double g, double gp[6]) {
  const int LO[3] = {0, 1, 4}, HI[3] = {2, 3, 5};
  double pe[3], ir[3], er[3], te[3], ie[3], ee[3];
#pragma unroll
  for (int a = 0; a < 3; ++a) {
    const int lo = LO[a], hi = HI[a];
    pe[a] = p[hi] - p[lo];
    te[a] = t[hi] - t[lo];
    ir[a] = fmin(p[hi], t[hi]) - fmax(p[lo], t[lo]);
    er[a] = fmax(p[hi], t[hi]) - fmin(p[lo], t[lo]);
    ie[a] = fmax(ir[a], 0.0);
    ee[a] = fmax(er[a], 0.0);
  }
  const double vp = ND_DMUL(ND_DMUL(pe[0], pe[1]), pe[2]);
  const double vt = ND_DMUL(ND_DMUL(te[0], te[1]), te[2]);
  const double inter = ND_DMUL(ND_DMUL(ie[0], ie[1]), ie[2]);
  const double uni = (vp + vt) - inter;
  const double iou = inter / uni;
  const double encl = ND_DMUL(ND_DMUL(ee[0], ee[1]), ee[2]) + eps;
  const double giou = iou - (encl - uni) / encl;
  const double d_encl = ND_DMUL(-g, uni) / ND_DMUL(encl, encl);
  const double d_union = g / encl - ND_DMUL(g, inter) / ND_DMUL(uni, uni);
  const double d_inter = g / uni - d_union;
  const double d_vp = d_union;
#pragma unroll
  for (int a = 0; a < 3; ++a) {
    const int lo = LO[a], hi = HI[a], b = (a + 1) % 3, c = (a + 2) % 3;
    const double d_pe = ND_DMUL(ND_DMUL(d_vp, pe[b]), pe[c]);
    const double d_ie = ir[a] >= 0.0 ? ND_DMUL(ND_DMUL(d_inter, ie[b]), ie[c]) : 0.0;
    const double d_ee = er[a] >= 0.0 ? ND_DMUL(ND_DMUL(d_encl, ee[b]), ee[c]) : 0.0;
    gp[hi] += (d_pe + ND_DMUL(d_ie, nd_share(p[hi] < t[hi], p[hi] == t[hi]))) +
              ND_DMUL(d_ee, nd_share(p[hi] > t[hi], p[hi] == t[hi]));
    gp[lo] += (-d_pe - ND_DMUL(d_ie, nd_share(p[lo] > t[lo], p[lo] == t[lo]))) -
              ND_DMUL(d_ee, nd_share(p[lo] < t[lo], p[lo] == t[lo]));
  }
  return giou;
}

struct NdGiouGeom {
  int64_t n;
  double eps;
  const float* pred;    // [n, 6]
  const float* target;  // [n, 6]
  float* giou;          // [n]
  float* grad;          // [n, 6] d(-sum GIoU)/dpred
  float* partials;      // workspace [ND_LOSS_MAX_BLOCKS]
  float* loss;          // [1] = -sum GIoU
};
static_assert(sizeof(NdGiouGeom) == 64, "layout shared with crates/nndet-core/src/cuda/detect.rs");

__global__ void __launch_bounds__(ND_LOSS_THREADS) giou_loss_kernel(NdGiouGeom g) {
  __shared__ float scratch[32];
  float acc = 0.0f;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.n; i += (int64_t)gridDim.x * blockDim.x) {
    double p[6], t[6], gp[6] = {0, 0, 0, 0, 0, 0};
#pragma unroll
    for (int k = 0; k < 6; ++k) {
      p[k] = (double)g.pred[i * 6 + k];
      t[k] = (double)g.target[i * 6 + k];
    }
    double v = nd_giou_fwd_bwd(p, t, g.eps, -1.0, gp);
    g.giou[i] = (float)v;
    acc += (float)(-v);
#pragma unroll
    for (int k = 0; k < 6; ++k) g.grad[i * 6 + k] = (float)gp[k];
  }
  float s = nd_block_sum(acc, scratch);
  if (threadIdx.x == 0) g.partials[blockIdx.x] = s;
}

NDK_EXPORT int NDK(det_giou_loss)(const NdGiouGeom* p, void* stream) {
  int nb = nd_loss_blocks(p->n, ND_LOSS_MAX_BLOCKS);
  ND_LAUNCH(giou_loss_kernel, nb, ND_LOSS_THREADS, 0, stream, *p);
  NDK_LAUNCHED();
  ND_LAUNCH(finalize_sum_kernel, 1, ND_LOSS_THREADS, 0, stream, (const float*)p->partials, nb, 1.0f, 0, p->loss);
  NDK_LAUNCHED();
  return 0;
}

// ---- head loss: BCE over rows cat(pos, neg) + GIoU(decode(deltas[pos], anchors[pos]), gt[pos]) / #pos ----
struct NdHeadGeom {
  int64_t a;  // anchors
  int32_t c;
  int32_t n_pos;
  int32_t n_neg;
  int32_t pad_;
  double w[6];
  double clip;
  const float* logits;      // [a, c]
  const float* deltas;      // [a, 6]
  const float* anchors;     // [a, 6]
  const int32_t* labels;    // [a]: -1 ignore, 0 background, k = class k-1
  const float* matched_gt;  // [a, 6]
  const int32_t* pos;       // [n_pos]
  const int32_t* neg;       // [n_neg]
  float* grad_logits;       // [a, c]
  float* grad_deltas;       // [a, 6]
  float* partials;          // workspace [2 * ND_LOSS_MAX_BLOCKS]
  float* losses;            // [2]: cls, reg (NaN when undefined)
};
static_assert(sizeof(NdHeadGeom) == 168, "layout shared with crates/nndet-core/src/cuda/detect.rs");

__global__ void zero_kernel(float* a, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) a[i] = 0.0f;
}

// One thread per positive: GIoU(decode(d, a), t) and -1/#pos * dGIoU/dd through the decode (cpu reg_row).
__global__ void __launch_bounds__(ND_LOSS_THREADS) head_reg_kernel(NdHeadGeom g, float* partials) {
  __shared__ float scratch[32];
  const int LO[3] = {0, 1, 4}, HI[3] = {2, 3, 5}, DC[3] = {0, 1, 4}, DS[3] = {2, 3, 5};
  const double scale = 1.0 / (double)g.n_pos;
  float acc = 0.0f;
  for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < g.n_pos; q += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = g.pos[q];
    if (i < 0 || i >= g.a) continue;
    double d[6], an[6], t[6], b[6], gb[6] = {0, 0, 0, 0, 0, 0}, pw[3];
    bool pass[3];
#pragma unroll
    for (int k = 0; k < 6; ++k) {
      d[k] = (double)g.deltas[i * 6 + k];
      an[k] = (double)g.anchors[i * 6 + k];
      t[k] = (double)g.matched_gt[i * 6 + k];
    }
#pragma unroll
    for (int ax = 0; ax < 3; ++ax) {
      const int lo = LO[ax], hi = HI[ax], dc = DC[ax], ds = DS[ax];
      const double aw = an[hi] - an[lo];
      const double ac = an[lo] + ND_DMUL(0.5, aw);
      const double dwh = d[ds] / g.w[ds];
      pass[ax] = dwh <= g.clip;
      pw[ax] = ND_DMUL(exp(fmin(dwh, g.clip)), aw);
      const double pc = ND_DMUL(d[dc] / g.w[dc], aw) + ac;
      b[lo] = pc - ND_DMUL(0.5, pw[ax]);
      b[hi] = pc + ND_DMUL(0.5, pw[ax]);
    }
    const double v = nd_giou_fwd_bwd(b, t, 1e-7, -scale, gb);
    acc += (float)(-v);
#pragma unroll
    for (int ax = 0; ax < 3; ++ax) {
      const int lo = LO[ax], hi = HI[ax], dc = DC[ax], ds = DS[ax];
      const double aw = an[hi] - an[lo];
      atomicAdd(g.grad_deltas + i * 6 + dc, (float)(ND_DMUL(gb[lo] + gb[hi], aw) / g.w[dc]));
      if (pass[ax]) atomicAdd(g.grad_deltas + i * 6 + ds, (float)(ND_DMUL(ND_DMUL(0.5, gb[hi] - gb[lo]), pw[ax]) / g.w[ds]));
    }
  }
  float s = nd_block_sum(acc, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

static unsigned nd_grid(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return (unsigned)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

NDK_EXPORT int NDK(det_head_loss)(const NdHeadGeom* p, void* stream) {
  const NdHeadGeom& g = *p;
  ND_LAUNCH(zero_kernel, nd_grid(g.a * g.c, 256), 256, 0, stream, g.grad_logits, g.a * (int64_t)g.c);
  NDK_LAUNCHED();
  ND_LAUNCH(zero_kernel, nd_grid(g.a * 6, 256), 256, 0, stream, g.grad_deltas, g.a * 6);
  NDK_LAUNCHED();
  const int64_t rows = (int64_t)g.n_pos + g.n_neg;
  NdBceArgs b = {rows, g.n_pos, g.a, g.c, 1, g.pos, g.neg, g.logits, g.labels, g.grad_logits, g.partials};
  int e = nd_bce(b, g.losses, stream);
  if (e) return e;
  int nb = nd_loss_blocks(g.n_pos, ND_LOSS_MAX_BLOCKS);
  float* preg = g.partials + ND_LOSS_MAX_BLOCKS;
  if (g.n_pos > 0) {
    ND_LAUNCH(head_reg_kernel, nb, ND_LOSS_THREADS, 0, stream, g, preg);
    NDK_LAUNCHED();
  }
  ND_LAUNCH(finalize_sum_kernel, 1, ND_LOSS_THREADS, 0, stream, (const float*)preg, g.n_pos > 0 ? nb : 0,
            g.n_pos > 0 ? (float)(1.0 / (double)g.n_pos) : 0.0f, (int)(g.n_pos == 0), g.losses + 1);
  NDK_LAUNCHED();
  return 0;
}

// ---- segmentation loss: logits [B, 2, V], target [B, V] (> 0 foreground) ----
struct NdSegGeom {
  int64_t b, v;
  int32_t batch_dice;
  int32_t nblk;  // blocks per sample (<= ND_SEG_MAX_BLOCKS), chosen by the launcher
  double w_ce, w_dice;
  const float* logits;
  const int32_t* target;
  float* grad;      // [B, 2, V]
  float* partials;  // workspace [B, ND_SEG_MAX_BLOCKS, 4]
  float* coef;      // workspace [B, 2] + [1]: dLoss/dp1 for fg / bg voxels per sample, CE scale
  float* losses;    // [2]: seg_ce, seg_dice
};
static_assert(sizeof(NdSegGeom) == 88, "layout shared with crates/nndet-core/src/cuda/detect.rs");

// Per (sample, block): sums of p1 * y, p1, y and -log p(target).
__global__ void __launch_bounds__(ND_LOSS_THREADS) seg_stats_kernel(NdSegGeom g) {
  __shared__ float scratch[32];
  const int64_t s = blockIdx.y;
  const float* l0 = g.logits + s * 2 * g.v;
  const float* l1 = l0 + g.v;
  float tp = 0.0f, sp = 0.0f, sy = 0.0f, ce = 0.0f;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.v; i += (int64_t)gridDim.x * blockDim.x) {
    const bool fg = g.target[s * g.v + i] > 0;
    const float d = l0[i] - l1[i];
    const float p1 = nd_sigmoid(-d);
    tp += fg ? p1 : 0.0f;
    sp += p1;
    sy += fg ? 1.0f : 0.0f;
    ce += nd_softplus(fg ? d : -d);
  }
  float* out = g.partials + (s * ND_SEG_MAX_BLOCKS + blockIdx.x) * 4;
  float r;
  r = nd_block_sum(tp, scratch);
  if (threadIdx.x == 0) out[0] = r;
  r = nd_block_sum(sp, scratch);
  if (threadIdx.x == 0) out[1] = r;
  r = nd_block_sum(sy, scratch);
  if (threadIdx.x == 0) out[2] = r;
  r = nd_block_sum(ce, scratch);
  if (threadIdx.x == 0) out[3] = r;
}

// One thread: per-sample sums (f64, fixed order), the losses and the gradient coefficients (as the CPU).
__global__ void seg_finalize_kernel(NdSegGeom g) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  const double smooth = 1e-5;
  const double n_vox = (double)(g.b * g.v);
  double ce = 0.0, all[3] = {0.0, 0.0, 0.0}, dice_sum = 0.0;
  for (int64_t s = 0; s < g.b; ++s) {
    double st[4] = {0.0, 0.0, 0.0, 0.0};
    for (int k = 0; k < g.nblk; ++k)
      for (int q = 0; q < 4; ++q) st[q] += (double)g.partials[(s * ND_SEG_MAX_BLOCKS + k) * 4 + q];
    ce += st[3];
    for (int q = 0; q < 3; ++q) all[q] += st[q];
    if (!g.batch_dice) {
      double nom = ND_DMUL(2.0, st[0]) + smooth;
      double den = ((ND_DMUL(2.0, st[0]) + (st[1] - st[0])) + (st[2] - st[0])) + smooth;
      dice_sum += nom / den;
      double k = -0.5 / (double)g.b / ND_DMUL(den, den);
      g.coef[s * 2] = (float)ND_DMUL(ND_DMUL(g.w_dice, k), ND_DMUL(2.0, den) - nom);
      g.coef[s * 2 + 1] = (float)ND_DMUL(ND_DMUL(g.w_dice, k), -nom);
    }
  }
  if (g.batch_dice) {
    double nom = ND_DMUL(2.0, all[0]) + smooth;
    double den = ((ND_DMUL(2.0, all[0]) + (all[1] - all[0])) + (all[2] - all[0])) + smooth;
    dice_sum = nom / den;
    double k = -0.5 / ND_DMUL(den, den);
    for (int64_t s = 0; s < g.b; ++s) {
      g.coef[s * 2] = (float)ND_DMUL(ND_DMUL(g.w_dice, k), ND_DMUL(2.0, den) - nom);
      g.coef[s * 2 + 1] = (float)ND_DMUL(ND_DMUL(g.w_dice, k), -nom);
    }
  }
  const double n_dc = g.batch_dice ? 1.0 : (double)g.b;
  g.coef[g.b * 2] = (float)(ND_DMUL(g.w_ce, 0.5) / n_vox);
  g.losses[0] = (float)(ND_DMUL(0.5, ce) / n_vox);
  g.losses[1] = (float)ND_DMUL(0.5, 1.0 - dice_sum / n_dc);
}

// dL/dl1 = dL/dp1 * p1 * p0 + ce_scale * (p1 - y); dL/dl0 = -dL/dl1.
__global__ void __launch_bounds__(ND_LOSS_THREADS) seg_grad_kernel(NdSegGeom g) {
  const int64_t s = blockIdx.y;
  const float* l0 = g.logits + s * 2 * g.v;
  const float* l1 = l0 + g.v;
  const float c_fg = g.coef[s * 2], c_bg = g.coef[s * 2 + 1], c_ce = g.coef[g.b * 2];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.v; i += (int64_t)gridDim.x * blockDim.x) {
    const bool fg = g.target[s * g.v + i] > 0;
    const float d = l0[i] - l1[i];
    const float p1 = nd_sigmoid(-d), p0 = nd_sigmoid(d);
    const float dl1 = (fg ? c_fg : c_bg) * p1 * p0 + c_ce * (fg ? -p0 : p1);
    g.grad[s * 2 * g.v + g.v + i] = dl1;
    g.grad[s * 2 * g.v + i] = -dl1;
  }
}

NDK_EXPORT int NDK(det_seg_loss)(const NdSegGeom* p, void* stream) {
  NdSegGeom g = *p;
  g.nblk = nd_loss_blocks(g.v, ND_SEG_MAX_BLOCKS);
  ND_LAUNCH(seg_stats_kernel, dim3(g.nblk, (unsigned)g.b), ND_LOSS_THREADS, 0, stream, g);
  NDK_LAUNCHED();
  ND_LAUNCH(seg_finalize_kernel, 1, ND_LOSS_THREADS, 0, stream, g);
  NDK_LAUNCHED();
  ND_LAUNCH(seg_grad_kernel, dim3(g.nblk, (unsigned)g.b), ND_LOSS_THREADS, 0, stream, g);
  NDK_LAUNCHED();
  return 0;
}
