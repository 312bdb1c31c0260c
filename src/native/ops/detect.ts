// Typed wrappers of the detection family (crates/nndet-core/src/ffi/detect.rs). Boxes are flat Float32Array
// [n*6] rows (x1, y1, x2, y2, z1, z2) over array axes 0, 1, 2 (nnDetection's convention, spec §5.0);
// indices and labels are Int32Array (0-based classes). Inputs pass zero-copy; outputs are new arrays unless
// a buffer is given. Mirrors nnDetection's nndet/core/boxes, matcher, sampler, losses and inference/detection.
import { check } from "../errors";
import { native } from "../lib";

/** nnDetection Matcher.BELOW_LOW_THRESHOLD: an anchor matched to no GT (background). */
export const BELOW_LOW_THRESHOLD = -1;
/** nnDetection Matcher.BETWEEN_THRESHOLDS: defined by nnDetection, never produced by ATSS. */
export const BETWEEN_THRESHOLDS = -2;
/** nnDetection's box coder clip of the size deltas, log(1000/16). */
export const BBOX_XFORM_CLIP = Math.log(1000 / 16);
const UNIT_WEIGHTS = new Float32Array([1, 1, 1, 1, 1, 1]);

function nBoxes(b: Float32Array, what: string): number {
  if (b.length % 6 !== 0) throw new RangeError(`${what} has ${b.length} floats, not a multiple of 6`);
  return b.length / 6;
}

/** The C ABI takes one count for several arrays: check each array's length here, before the call. */
function sized(what: string, a: ArrayLike<number>, n: number): void {
  if (a.length !== n) throw new RangeError(`${what} has ${a.length} elements, expected ${n}`);
}

function pairwise(a: Float32Array, b: Float32Array, kind: number, eps: number, op: string): Float32Array {
  const out = new Float32Array(nBoxes(a, "boxes1") * nBoxes(b, "boxes2"));
  check(native().nd_box_pairwise(a, a.length, b, b.length, kind, eps, out, out.length), op);
  return out;
}

/** Pairwise IoU [n*m] (nnDetection box_iou). Two zero-volume boxes give NaN (0/0), as in nnDetection. */
export const boxIou = (a: Float32Array, b: Float32Array) => pairwise(a, b, 0, 0, "boxIou");
/** Pairwise GIoU [n*m]; `eps` is added to the enclosing volume only (GIoULoss uses 1e-7). */
export const boxGiou = (a: Float32Array, b: Float32Array, eps = 0) => pairwise(a, b, 1, eps, "boxGiou");
/** Pairwise euclidean distance of box centres [n*m]. */
export const boxCenterDist = (a: Float32Array, b: Float32Array) => pairwise(a, b, 2, 0, "boxCenterDist");

function elementwise(a: Float32Array, b: Float32Array, kind: number, eps: number, op: string): Float32Array {
  const out = new Float32Array(nBoxes(a, "boxes1"));
  sized("boxes2", b, a.length);
  check(native().nd_box_elementwise(a, b, a.length, kind, eps, out, out.length), op);
  return out;
}

/** IoU of box i with box i. */
export const boxIouElementwise = (a: Float32Array, b: Float32Array) => elementwise(a, b, 0, 0, "boxIouElementwise");
/** GIoU of box i with box i. */
export const boxGiouElementwise = (a: Float32Array, b: Float32Array, eps = 0) =>
  elementwise(a, b, 1, eps, "boxGiouElementwise");

/** Volumes [n] and centres [n*3] ((x1+x2)/2, (y1+y2)/2, (z1+z2)/2). */
export function boxAreasCenters(b: Float32Array): { areas: Float32Array; centers: Float32Array } {
  const n = nBoxes(b, "boxes");
  const areas = new Float32Array(n);
  const centers = new Float32Array(3 * n);
  check(native().nd_box_areas_centers(b, b.length, areas, n, centers, 3 * n), "boxAreasCenters");
  return { areas, centers };
}

/** Clip in place: x to [0, s0], y to [0, s1], z to [0, s2]. Returns `b`. */
export function clipBoxes(b: Float32Array, shape: ArrayLike<number>): Float32Array {
  check(native().nd_box_clip(b, b.length, shape[0]!, shape[1]!, shape[2]!), "clipBoxes");
  return b;
}

/** Indices (ascending) of boxes whose every side is >= minSize (nnDetection remove_small_boxes). */
export function removeSmallBoxes(b: Float32Array, minSize: number): Int32Array {
  const keep = new Int32Array(nBoxes(b, "boxes"));
  const count = new Int32Array(1);
  check(native().nd_box_remove_small(b, b.length, minSize, keep, keep.length, count), "removeSmallBoxes");
  return keep.slice(0, count[0]!);
}

/** Instance mask [s0][s1][s2] -> ids > 0 ascending and their boxes [min-1, max+1] (instances_to_boxes). */
export function instancesToBoxes(
  mask: Int32Array,
  shape: readonly [number, number, number],
): { ids: Int32Array; boxes: Float32Array } {
  let cap = 64;
  for (;;) {
    const ids = new Int32Array(cap);
    const boxes = new Float32Array(cap * 6);
    const count = new Int32Array(1);
    check(
      native().nd_instances_to_boxes(mask, mask.length, shape[0], shape[1], shape[2], ids, boxes, cap, count),
      "instancesToBoxes",
    );
    const n = count[0]!;
    if (n <= cap) return { ids: ids.slice(0, n), boxes: boxes.slice(0, 6 * n) };
    cap = n;
  }
}

/** One FPN level of AnchorGenerator3DS: sizes per axis, feature-map size and stride per axis. */
export interface AnchorLevel {
  widths: readonly number[];
  heights: readonly number[];
  depths: readonly number[];
  fmapSize: readonly [number, number, number];
  stride: readonly [number, number, number];
}

export const anchorsPerLocation = (l: AnchorLevel) => l.widths.length * l.heights.length * l.depths.length;
export const anchorsInLevel = (l: AnchorLevel) => anchorsPerLocation(l) * l.fmapSize[0] * l.fmapSize[1] * l.fmapSize[2];

/** The C ABI's level description: 9 ints per level (sizes per axis, fmap, stride) and the sizes. */
function describeLevels(levels: readonly AnchorLevel[]): { desc: Int32Array; sizes: Float32Array; total: number } {
  const desc = new Int32Array(levels.length * 9);
  const sizes: number[] = [];
  levels.forEach((l, i) => {
    desc.set([l.widths.length, l.heights.length, l.depths.length, ...l.fmapSize, ...l.stride], i * 9);
    sizes.push(...l.widths, ...l.heights, ...l.depths);
  });
  return { desc, sizes: new Float32Array(sizes), total: levels.reduce((s, l) => s + anchorsInLevel(l), 0) };
}

/** All anchors [A*6]: level-major, then position (axis 2 fastest), then the cell anchors (width slowest). */
export function generateAnchors(levels: readonly AnchorLevel[]): Float32Array {
  const { desc, sizes, total } = describeLevels(levels);
  const out = new Float32Array(total * 6);
  check(native().nd_anchors_generate(desc, desc.length, sizes, sizes.length, out, out.length), "generateAnchors");
  return out;
}

/** Box coder encode (BoxCoderND.encode_single): deltas (dx, dy, dw, dh, dz, dd) of gt relative to anchors. */
export function encodeBoxes(gt: Float32Array, anchors: Float32Array, weights: Float32Array = UNIT_WEIGHTS): Float32Array {
  const out = new Float32Array(gt.length);
  sized("anchors", anchors, gt.length);
  sized("weights", weights, 6);
  check(native().nd_box_encode(gt, anchors, gt.length, weights, out), "encodeBoxes");
  return out;
}

/** Box coder decode (decode_single): size deltas clamped to at most `clip`. */
export function decodeBoxes(
  deltas: Float32Array,
  anchors: Float32Array,
  weights: Float32Array = UNIT_WEIGHTS,
  clip = BBOX_XFORM_CLIP,
  out = new Float32Array(deltas.length),
): Float32Array {
  if (anchors.length !== deltas.length || out.length !== deltas.length)
    throw new RangeError(`deltas ${deltas.length}, anchors ${anchors.length} and out ${out.length} floats differ`);
  sized("weights", weights, 6);
  check(native().nd_box_decode(deltas, anchors, deltas.length, weights, clip, out), "decodeBoxes");
  return out;
}

export interface AtssOptions {
  /** Candidates per level in units of anchors per location (nnDetection: 4). */
  numCandidates?: number;
  /** Require candidate centres more than 0.01 inside the GT (nnDetection v001: false). */
  centerInGt?: boolean;
  /** Use the plain reference path (tests). */
  plain?: boolean;
}

/** ATSS matches [A]: GT index per anchor or BELOW_LOW_THRESHOLD. */
export function atssMatch(
  gt: Float32Array,
  anchors: Float32Array,
  numAnchorsPerLevel: readonly number[],
  numAnchorsPerLocation: number,
  opts: AtssOptions = {},
): Int32Array {
  const matches = new Int32Array(nBoxes(anchors, "anchors"));
  const pl = new Int32Array(numAnchorsPerLevel);
  check(
    native().nd_atss_match(
      gt, gt.length, anchors, anchors.length, pl, pl.length, numAnchorsPerLocation, opts.numCandidates ?? 4,
      opts.centerInGt ? 1 : 0, opts.plain ? 1 : 0, matches, matches.length,
    ),
    "atssMatch",
  );
  return matches;
}

/**
 * ATSS matches on the anchors of `levels`, computed on demand (identical to atssMatch on generateAnchors(levels),
 * without reading a [A*6] anchor array: the fast path for training). All levels need the same anchors per location.
 */
export function atssMatchLevels(gt: Float32Array, levels: readonly AnchorLevel[], opts: Omit<AtssOptions, "plain"> = {}): Int32Array {
  const { desc, sizes, total } = describeLevels(levels);
  const matches = new Int32Array(total);
  check(
    native().nd_atss_match_levels(
      gt, gt.length, desc, desc.length, sizes, sizes.length, opts.numCandidates ?? 4, opts.centerInGt ? 1 : 0, matches, total,
    ),
    "atssMatchLevels",
  );
  return matches;
}

/** Anchor labels as BaseRetinaNet.assign_targets_to_anchors: class + 1 when matched, 0 for background. */
export function matchedLabels(matches: Int32Array, gtClasses: ArrayLike<number>): Int32Array {
  return matches.map((m) => (m >= 0 ? gtClasses[m]! + 1 : 0));
}

export interface SamplerOptions {
  batch: number;
  batchSizePerImage?: number;
  positiveFraction?: number;
  minNeg?: number;
  poolSize?: number;
  seed?: number | bigint;
}

/**
 * HardNegativeSamplerBatched over the batch's labels [A] (-1 ignore, 0 bg, >= 1 pos) and logits [A*c]; ascending
 * indices. Negatives are ranked by their max logit (the order of nnDetection's max sigmoid probability); draws
 * come from a seeded SplitMix64 stream, so a seed reproduces a run (not torch's generator).
 */
export function hardNegativeSample(
  labels: Int32Array,
  logits: Float32Array,
  numClasses: number,
  o: SamplerOptions,
): { pos: Int32Array; neg: Int32Array } {
  const bspi = o.batchSizePerImage ?? 32;
  const pf = o.positiveFraction ?? 0.33;
  const maxPos = Math.floor(bspi * o.batch * pf);
  const maxNeg = Math.max(Math.floor(Math.max(1, maxPos) * Math.abs(1 - 1 / pf)), o.minNeg ?? 1);
  const cap = Math.max(maxPos, maxNeg, 0) + 1;
  const pos = new Int32Array(cap);
  const neg = new Int32Array(cap);
  const counts = new Int32Array(2);
  check(
    native().nd_hnm_sample(
      labels, labels.length, logits, logits.length, numClasses, bspi, o.batch, pf,
      o.minNeg ?? 1, o.poolSize ?? 20, BigInt.asUintN(64, BigInt(o.seed ?? 0)), pos, cap, neg, cap, counts,
    ),
    "hardNegativeSample",
  );
  return { pos: pos.slice(0, counts[0]!), neg: neg.slice(0, counts[1]!) };
}

/** BCEWithLogitsLossOneHot (mean over n*c); targets 0 = background, k = class k-1. */
export function bceOneHotLoss(
  logits: Float32Array,
  targets: Int32Array,
  numClasses: number,
  grad = new Float32Array(logits.length),
): { loss: number; grad: Float32Array } {
  const loss = new Float64Array(1);
  if (grad.length !== logits.length) throw new RangeError("grad must match logits");
  check(native().nd_bce_loss(logits, logits.length, targets, targets.length, numClasses, grad, loss), "bceOneHotLoss");
  return { loss: loss[0]!, grad };
}

/** GIoULoss(reduction='sum') = -Σ GIoU(pred_i, target_i) with per-box GIoU and d loss / d pred. */
export function giouLoss(
  pred: Float32Array,
  target: Float32Array,
  eps = 1e-7,
): { loss: number; giou: Float32Array; grad: Float32Array } {
  const n = nBoxes(pred, "pred");
  if (target.length !== pred.length) throw new RangeError("target must match pred");
  const giou = new Float32Array(n);
  const grad = new Float32Array(pred.length);
  const loss = new Float64Array(1);
  check(native().nd_giou_loss(pred, target, pred.length, eps, giou, n, grad, loss), "giouLoss");
  return { loss: loss[0]!, giou, grad };
}

export interface HeadLossInput {
  logits: Float32Array; // [A*c]
  deltas: Float32Array; // [A*6]
  anchors: Float32Array; // [A*6]
  matchedGt: Float32Array; // [A*6]
  labels: Int32Array; // [A]: -1 ignore, 0 background, k = class k-1
  pos: Int32Array;
  neg: Int32Array;
  numClasses: number;
  weights?: Float32Array;
  clip?: number;
}

/** DetectionHeadHNMNative.compute_loss (v001) for sampled indices; gradients of lossCls + lossReg. */
export function detectionHeadLoss(x: HeadLossInput, grads?: { logits: Float32Array; deltas: Float32Array }) {
  const a = x.labels.length;
  const gradLogits = grads?.logits ?? new Float32Array(a * x.numClasses);
  const gradDeltas = grads?.deltas ?? new Float32Array(a * 6);
  if (x.logits.length !== a * x.numClasses || gradLogits.length !== a * x.numClasses)
    throw new RangeError(`logits and their gradient need ${a * x.numClasses} floats`);
  for (const [w, v] of [["deltas", x.deltas], ["anchors", x.anchors], ["matchedGt", x.matchedGt], ["grad deltas", gradDeltas]] as const)
    if (v.length !== a * 6) throw new RangeError(`${w} has ${v.length} floats, expected ${a * 6}`);
  sized("weights", x.weights ?? UNIT_WEIGHTS, 6);
  const losses = new Float64Array(2);
  check(
    native().nd_head_loss(
      x.logits, x.deltas, x.anchors, x.matchedGt, x.labels, a, x.numClasses, x.pos, x.pos.length, x.neg,
      x.neg.length, x.weights ?? UNIT_WEIGHTS, x.clip ?? BBOX_XFORM_CLIP, gradLogits, gradDeltas, losses,
    ),
    "detectionHeadLoss",
  );
  return { lossCls: losses[0]!, lossReg: Number.isNaN(losses[1]!) ? null : losses[1]!, gradLogits, gradDeltas };
}

/** DiCESegmenterFgBg loss: logits [B,2,V], target [B,V] (> 0 = fg); grad of wCe*segCe + wDice*segDice. */
export function segLoss(
  logits: Float32Array,
  target: Int32Array,
  batch: number,
  o: { batchDice?: boolean; wCe?: number; wDice?: number; grad?: Float32Array } = {},
): { segCe: number; segDice: number; grad: Float32Array } {
  const grad = o.grad ?? new Float32Array(logits.length);
  if (grad.length !== logits.length) throw new RangeError("grad must match logits");
  const losses = new Float64Array(2);
  check(
    native().nd_seg_loss(
      logits, logits.length, target, target.length, batch, o.batchDice === false ? 0 : 1, o.wCe ?? 1, o.wDice ?? 1,
      grad, losses,
    ),
    "segLoss",
  );
  return { segCe: losses[0]!, segDice: losses[1]!, grad };
}

/** Greedy 3D NMS (IoU > thr suppresses; ties by lower index); class-wise when labels are given. Keep order. */
export function nms3d(
  boxes: Float32Array,
  scores: Float32Array,
  iouThreshold: number,
  o: { labels?: Int32Array; plain?: boolean } = {},
): Int32Array {
  const keep = new Int32Array(scores.length);
  const count = new Int32Array(1);
  const labels = o.labels ?? new Int32Array(0);
  check(
    native().nd_nms(boxes, boxes.length, scores, scores.length, labels, labels.length, iouThreshold, o.plain ? 1 : 0, keep, count),
    "nms3d",
  );
  return keep.slice(0, count[0]!);
}

/** batched_weighted_nms_model: class-wise NMS ranked by score*weight; kept indices in keep order. */
export function weightedNms(
  boxes: Float32Array,
  scores: Float32Array,
  weights: Float32Array,
  labels: Int32Array,
  iouThreshold: number,
  o: { plain?: boolean } = {},
): Int32Array {
  const keep = new Int32Array(scores.length);
  const count = new Int32Array(1);
  sized("weights", weights, scores.length);
  sized("labels", labels, scores.length);
  check(
    native().nd_weighted_nms(boxes, boxes.length, scores, weights, labels, scores.length, iouThreshold, o.plain ? 1 : 0, keep, count),
    "weightedNms",
  );
  return keep.slice(0, count[0]!);
}

export interface Detections {
  boxes: Float32Array;
  scores: Float32Array;
  labels: Int32Array;
}

/** batched_wbc_ensemble (use_area False, missing weight 1): clusters grouped by label ascending. */
export function wbc(
  boxes: Float32Array,
  scores: Float32Array,
  labels: Int32Array,
  weights: Float32Array,
  nExp: Float32Array,
  iouThreshold: number,
  scoreThreshold = 0,
): Detections {
  const n = scores.length;
  for (const [w, v] of [["labels", labels], ["weights", weights], ["nExp", nExp]] as const) sized(w, v, n);
  const ob = new Float32Array(n * 6);
  const os = new Float32Array(n);
  const ol = new Int32Array(n);
  const count = new Int32Array(1);
  check(
    native().nd_wbc(boxes, boxes.length, scores, labels, weights, nExp, n, iouThreshold, scoreThreshold, ob, os, ol, count),
    "wbc",
  );
  const k = count[0]!;
  return { boxes: ob.slice(0, 6 * k), scores: os.slice(0, k), labels: ol.slice(0, k) };
}

/** Per-patch post-processing parameters (nnDetection v001 defaults). */
export interface PostprocessParams {
  topkCandidates: number;
  scoreThresh: number;
  detectionsPerImg: number;
  removeSmallBoxes: number;
  nmsThresh: number;
}

export const DEFAULT_POSTPROCESS: PostprocessParams = {
  topkCandidates: 10000,
  scoreThresh: 0,
  detectionsPerImg: 100,
  removeSmallBoxes: 0.01,
  nmsThresh: 0.6,
};

/**
 * postprocess_detections_single_image: `boxes` are decoded [A*6], or deltas when `anchors` is given (only the
 * selected candidates are decoded). probs [A*c] sigmoid probabilities. NaN probabilities are never selected.
 */
export function postprocessDetections(x: {
  boxes: Float32Array;
  anchors?: Float32Array;
  weights?: Float32Array;
  clip?: number;
  probs: Float32Array;
  numClasses: number;
  imageShape: ArrayLike<number>;
  params?: Partial<PostprocessParams>;
}): Detections {
  const p = { ...DEFAULT_POSTPROCESS, ...x.params };
  const cap = Math.max(0, Math.min(p.detectionsPerImg, x.probs.length));
  const ob = new Float32Array(cap * 6);
  const os = new Float32Array(cap);
  const ol = new Int32Array(cap);
  const count = new Int32Array(1);
  const anchors = x.anchors ?? new Float32Array(0);
  if (x.weights) sized("weights", x.weights, 6);
  check(
    native().nd_det_postprocess(
      x.boxes, x.boxes.length, anchors, anchors.length, x.weights ?? UNIT_WEIGHTS, x.clip ?? BBOX_XFORM_CLIP, x.probs,
      x.probs.length, x.numClasses, x.imageShape[0]!, x.imageShape[1]!, x.imageShape[2]!, p.topkCandidates,
      p.scoreThresh, p.detectionsPerImg, p.removeSmallBoxes, p.nmsThresh, ob, os, ol, cap, count,
    ),
    "postprocessDetections",
  );
  const k = count[0]!;
  return { boxes: ob.slice(0, 6 * k), scores: os.slice(0, k), labels: ol.slice(0, k) };
}
