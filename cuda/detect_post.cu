// Per-patch detection post-processing on the device, mirroring crates/nndet-core/src/cpu/detect/
// postprocess.rs (nnDetection BaseRetinaNet.postprocess_detections_single_image): the k = min(topk, A)
// best probabilities > score_thresh of probs [A, C] (top-k of detect_select.cu; C-major flat index:
// anchor = idx / C, label = idx % C), their boxes (given, or decoded from deltas and anchors), clipped to
// the patch, boxes with a side < min_size dropped, class-wise NMS (detect_nms.cu) and the first
// detections_per_img kept.
// NOTE: the NMS runs over all k slots with the launch-time size k; dropped or empty slots get score -inf and
// an all-zero box, so they rank after every real candidate (kept order = the CPU's order on the real ones),
// cannot suppress them, and do not move nnDetection's class shift (clipped boxes are >= 0). Nothing waits
// for the host: the candidate count stays on the device.
#include "detect_common.cuh"

struct NdPostGeom {
  int64_t a;  // anchors
  int32_t c;  // classes
  int32_t decoded;  // 1: boxes [A, 6] given; 0: deltas [A, 6] + anchors [A, 6]
  int64_t k;  // min(topk, A)
  int64_t dpi;  // detections_per_img
  float w[6];
  float clip;
  float shape[3];
  float min_size;
  float pad_;
  const float* boxes;    // decoded boxes, or deltas
  const float* anchors;  // when !decoded
  float* pbox;           // workspace [k, 6]
  float* pscore;         // workspace [k]
  int32_t* plabel;       // workspace [k]
  float* out_boxes;      // [cap, 6]
  float* out_scores;     // [cap]
  int32_t* out_labels;   // [cap]
  int32_t* count;        // [1]
  NdTopkGeom topk;       // over probs, outputs into workspace (scores, idx, count)
  NdNmsGeom nms;         // over pbox / pscore / plabel, n = k
};
static_assert(sizeof(NdPostGeom) == 152 + 112 + 208, "layout shared with crates/nndet-core/src/cuda/detect.rs");

__global__ void post_prep_kernel(NdPostGeom g) {
  const int32_t nc = g.topk.count[0];
  for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < g.k; j += (int64_t)gridDim.x * blockDim.x) {
    float b[6] = {0, 0, 0, 0, 0, 0};
    float score = -INFINITY;
    int32_t label = 0;
    if (j < nc) {
      const int64_t idx = g.topk.out_idx[j], a = idx / g.c;
      if (g.decoded) {
#pragma unroll
        for (int q = 0; q < 6; ++q) b[q] = g.boxes[a * 6 + q];
      } else {
        nd_decode_row(g.boxes + a * 6, g.anchors + a * 6, g.w, g.clip, b);
      }
#pragma unroll
      for (int q = 0; q < 6; ++q) b[q] = nd_minp(nd_maxp(b[q], 0.0f), q >= 4 ? g.shape[2] : ((q & 1) ? g.shape[1] : g.shape[0]));
      if ((b[2] - b[0]) >= g.min_size && (b[3] - b[1]) >= g.min_size && (b[5] - b[4]) >= g.min_size) {
        score = g.topk.out_scores[j];
        label = (int32_t)(idx % g.c);
      } else {
#pragma unroll
        for (int q = 0; q < 6; ++q) b[q] = 0.0f;
      }
    }
#pragma unroll
    for (int q = 0; q < 6; ++q) g.pbox[j * 6 + q] = b[q];
    g.pscore[j] = score;
    g.plabel[j] = label;
  }
}

// The kept real candidates are a prefix of the keep list; the first detections_per_img of them go out.
__global__ void post_out_kernel(NdPostGeom g) {
  const int64_t nk = g.nms.count[0];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.k; i += (int64_t)gridDim.x * blockDim.x) {
    const bool real = i < nk && g.pscore[g.nms.keep[i]] != -INFINITY;
    const bool next = i + 1 < nk && g.pscore[g.nms.keep[i + 1]] != -INFINITY;
    if (i == 0 && !real) g.count[0] = 0;
    if (!real) continue;
    if (!next) g.count[0] = (int32_t)(i + 1 < g.dpi ? i + 1 : g.dpi);
    if (i >= g.dpi) continue;
    const int64_t j = g.nms.keep[i];
#pragma unroll
    for (int q = 0; q < 6; ++q) g.out_boxes[i * 6 + q] = g.pbox[j * 6 + q];
    g.out_scores[i] = g.pscore[j];
    g.out_labels[i] = g.plabel[j];
  }
}

__global__ void post_zero_kernel(int32_t* count) {
  if (threadIdx.x == 0) count[0] = 0;
}

NDK_EXPORT int NDK(det_postprocess)(const NdPostGeom* p, void* stream) {
  const NdPostGeom& g = *p;
  if (g.k == 0 || g.dpi == 0) {
    ND_LAUNCH(post_zero_kernel, 1, 256, 0, stream, g.count);
    NDK_LAUNCHED();
    return 0;
  }
  int e = NDK(det_topk)(&g.topk, stream);
  if (e) return e;
  int64_t blocks = (g.k + 255) / 256;
  ND_LAUNCH(post_prep_kernel, (unsigned)(blocks < 65535 ? blocks : 65535), 256, 0, stream, g);
  NDK_LAUNCHED();
  e = NDK(det_nms)(&g.nms, stream);
  if (e) return e;
  ND_LAUNCH(post_out_kernel, (unsigned)(blocks < 65535 ? blocks : 65535), 256, 0, stream, g);
  NDK_LAUNCHED();
  return 0;
}
