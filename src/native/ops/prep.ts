// Typed wrappers of the preprocessing family: resampling of volumes [d0, d1, d2] (cubic B-spline as
// scikit-image resize(order=3, mode='edge', clip=True), trilinear, nearest for labels) and the
// hole-filled non-zero mask nnDetection crops to. Threads: the native pool.
import { check } from "../errors";
import { native } from "../lib";

export type Shape3 = [number, number, number];
export type ResampleOrder = 0 | 1 | 3;

const CLIP = 1;
const PLAIN = 2;

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Resample one f32 volume to `outShape`. `clip` (default true) limits output to the input's range;
 *  `plain` runs the unoptimised reference path (tests). NaN inputs count as 0. */
export function resample3d(
  src: Float32Array,
  inShape: Shape3,
  outShape: Shape3,
  order: ResampleOrder,
  opts: { clip?: boolean; plain?: boolean; out?: Float32Array } = {},
): Float32Array {
  const dst = opts.out ?? new Float32Array(prod(outShape));
  const shapes = new Int32Array([...inShape, ...outShape]);
  const flags = (opts.clip ?? true ? CLIP : 0) | (opts.plain ? PLAIN : 0);
  check(native().nd_resample3d(src, src.length, dst, dst.length, shapes, order, flags), "resample3d");
  return dst;
}

/** Nearest-neighbour resampling of an i32 label volume (instance ids and -1 kept). */
export function resample3dLabels(src: Int32Array, inShape: Shape3, outShape: Shape3): Int32Array {
  const dst = new Int32Array(prod(outShape));
  const shapes = new Int32Array([...inShape, ...outShape]);
  check(native().nd_resample3d_labels(src, src.length, dst, dst.length, shapes), "resample3dLabels");
  return dst;
}

/** Hole-filled mask of voxels where any channel of data [C, ...dims] is non-zero, and its bounding box
 *  as half-open [lo, hi) per axis (null when the mask is empty). */
export function nonzeroMask(
  data: Float32Array,
  channels: number,
  dims: Shape3,
): { mask: Uint8Array; bbox: [number, number][] | null } {
  const mask = new Uint8Array(prod(dims));
  const bb = new Int32Array(6);
  check(native().nd_nonzero_mask(data, data.length, channels, new Int32Array(dims), mask, mask.length, bb), "nonzeroMask");
  const box: [number, number][] = [
    [bb[0]!, bb[1]!],
    [bb[2]!, bb[3]!],
    [bb[4]!, bb[5]!],
  ];
  return { mask, bbox: bb[1]! > 0 ? box : null };
}

/** Boxes of every instance id > 0 of a label volume, sorted by id, in nnDetection's box convention
 *  (x1, y1, x2, y2, z1, z2) with voxels a..b giving [a − 1, b + 1]; and voxel counts. The native twin of
 *  src/data/boxes.ts `instancesToBoxes` (threaded). */
export function labelBoxes(seg: Int32Array, dims: Shape3): { ids: number[]; boxes: [number, number, number, number, number, number][]; voxels: number[] } {
  const d = new Int32Array(dims);
  const max = new Int32Array(1);
  check(native().nd_label_extents(seg, seg.length, d, new Float64Array(0), 0, max), "labelBoxes");
  const m = max[0]!;
  const ext = new Float64Array((m + 1) * 7);
  check(native().nd_label_extents(seg, seg.length, d, ext, ext.length, max), "labelBoxes");
  const ids: number[] = [];
  const boxes: [number, number, number, number, number, number][] = [];
  const voxels: number[] = [];
  for (let id = 1; id <= m; id++) {
    const r = ext.subarray(id * 7, id * 7 + 7);
    if (r[6] === 0) continue;
    ids.push(id);
    boxes.push([r[0]! - 1, r[2]! - 1, r[1]! + 1, r[3]! + 1, r[4]! - 1, r[5]! + 1]);
    voxels.push(r[6]!);
  }
  return { ids, boxes, voxels };
}

/** Round a float label map to int32 (threaded). */
export function roundLabels(src: Float32Array): Int32Array {
  const dst = new Int32Array(src.length);
  check(native().nd_round_labels(src, dst, src.length), "roundLabels");
  return dst;
}
