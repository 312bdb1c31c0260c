// Cropping to the non-zero region (spec §3.1; nnU-Net 1.7.1 `crop_to_nonzero`): the mask of voxels where
// any channel is non-zero, hole-filled in 3D (native `nonzeroMask`), its bounding box [lo, hi) per axis;
// data and seg are cropped to it, and seg voxels that are 0 outside the mask become −1. Arrays are
// channel-major [C, d0, d1, d2] float32; seg is int32 [d0, d1, d2].
import { nonzeroMask, type Shape3 } from "../native";

export interface CroppedCase {
  /** float32 [C, ...shape] */
  data: Float32Array;
  /** int32 [...shape]: instance ids, 0 background, −1 outside the non-zero region */
  seg: Int32Array;
  channels: number;
  shape: Shape3;
  /** Crop box in the original array: [lo, hi) per axis. */
  bbox: [number, number][];
  /** Sorted distinct values of the cropped seg (before values < −1 are zeroed), as nnDetection records. */
  classes: number[];
}

/** Copy the box `bbox` of a [d0, d1, d2] volume (any typed array) into `out`. */
export function cropVolume<T extends Float32Array | Int32Array | Uint8Array>(src: T, dims: Shape3, bbox: [number, number][], out: T): T {
  const [[a0, a1], [b0, b1], [c0, c1]] = bbox as [[number, number], [number, number], [number, number]];
  const w = c1 - c0;
  let o = 0;
  for (let a = a0; a < a1; a++) {
    for (let b = b0; b < b1; b++) {
      const s = (a * dims[1] + b) * dims[2] + c0;
      out.set(src.subarray(s, s + w) as never, o);
      o += w;
    }
  }
  return out;
}

/** Crop a case to its hole-filled non-zero region. `seg` null (test images) gives 0 inside, −1 outside. */
export function cropToNonzero(data: Float32Array, channels: number, dims: Shape3, seg: Int32Array | null): CroppedCase {
  const n = dims[0] * dims[1] * dims[2];
  const { mask, bbox: box } = nonzeroMask(data, channels, dims);
  // NOTE: an all-zero image has no box (nnU-Net fails there); we keep the whole volume.
  const bbox = box ?? dims.map((d) => [0, d] as [number, number]);
  const shape = bbox.map(([lo, hi]) => hi - lo) as Shape3;
  const m = shape[0] * shape[1] * shape[2];
  // NOTE: when the box is the whole volume (noise images, most CT), data is returned as is (not copied).
  const whole = m === n;
  const out = whole ? data : new Float32Array(channels * m);
  if (!whole) for (let c = 0; c < channels; c++) cropVolume(data.subarray(c * n, (c + 1) * n), dims, bbox, out.subarray(c * m, (c + 1) * m));
  const cmask = whole ? mask : cropVolume(mask, dims, bbox, new Uint8Array(m));
  const cseg = seg ? (whole ? seg.slice() : cropVolume(seg, dims, bbox, new Int32Array(m))) : new Int32Array(m);
  const seen = new Set<number>();
  let last = Number.NaN;
  for (let i = 0; i < m; i++) {
    let v = cseg[i]!;
    if (v === 0 && cmask[i] === 0) cseg[i] = v = -1;
    // NOTE: a Set insert per voxel costs ~1 s on 256³; values come in long runs.
    if (v !== last) {
      seen.add(v);
      last = v;
    }
    if (v < -1) cseg[i] = 0;
  }
  return { data: out, seg: cseg, channels, shape, bbox, classes: [...seen].sort((a, b) => a - b) };
}
