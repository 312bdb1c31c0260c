// Pure-TS box helpers of inference (nnDetection nndet/inference/transforms.py and
// ensembler/detection.py): the box inverse of the 8 mirror TTA transforms (spec §7.2) and the
// centre-distance tile weight of BoxEnsemblerSelective (§7.3). Boxes are flat [n*6] (x1, y1, x2, y2, z1, z2)
// over array axes 0, 1, 2; arithmetic is rounded to f32 as nnDetection's float32 tensors are.

/** Mirrored axes of nnDetection's 8 TTA transforms, in its order (transform t is `model{m}_t{t}`). */
export const TTA_MIRROR_DIMS: readonly (readonly number[])[] = [[], [0], [1], [0, 1], [2], [0, 2], [1, 2], [0, 1, 2]];

/** nnDetection's TTA subset for `-ntta n`: < 4 identity only, 4 the first four, else all eight. */
export function ttaTransforms(n: number): readonly (readonly number[])[] {
  return n < 4 ? TTA_MIRROR_DIMS.slice(0, 1) : n < 8 ? TTA_MIRROR_DIMS.slice(0, 4) : TTA_MIRROR_DIMS;
}

/** Box columns (low, high) of each array axis. */
const COLS: readonly (readonly [number, number])[] = [[0, 2], [1, 3], [4, 5]];

/**
 * Boxes predicted on a tile mirrored along `mirrorDims` back to the unmirrored tile of shape `tileSize`:
 * on a mirrored axis c -> S - c and min/max swap, e.g. (x1, x2) -> (S0 - x2, S0 - x1). Returns a new array.
 */
export function invertMirrorBoxes(
  boxes: Float32Array,
  mirrorDims: readonly number[],
  tileSize: ArrayLike<number>,
): Float32Array {
  const out = boxes.slice();
  for (const d of mirrorDims) {
    const [lo, hi] = COLS[d]!;
    const s = tileSize[d]!;
    for (let i = 0; i < out.length; i += 6) {
      const a = boxes[i + lo]!;
      const b = boxes[i + hi]!;
      out[i + lo] = s - b;
      out[i + hi] = s - a;
    }
  }
  return out;
}

/** Box centres [n*3] as nnDetection's box_center ((x1 + x2) / 2 per axis, f32). */
export function boxCentersTs(boxes: Float32Array): Float32Array {
  const n = boxes.length / 6;
  const c = new Float32Array(3 * n);
  for (let i = 0; i < n; i++)
    for (let a = 0; a < 3; a++) {
      const [lo, hi] = COLS[a]!;
      c[3 * i + a] = Math.fround(boxes[6 * i + lo]! + boxes[6 * i + hi]!) / 2;
    }
  return c;
}

/**
 * BoxEnsemblerSelective._get_box_in_tile_weight: w = 1 - max(0, |c - t/2| / |t/2| - 0.5) with euclidean
 * norms, per centre [n*3] (1 in the central region, 0.5 at the tile corners, lower outside the tile).
 */
export function tileWeights(centers: Float32Array, tileSize: ArrayLike<number>): Float32Array {
  const f = Math.fround;
  const t = [f(tileSize[0]! / 2), f(tileSize[1]! / 2), f(tileSize[2]! / 2)];
  const maxDist = f(Math.sqrt(f(f(f(t[0]! * t[0]!) + f(t[1]! * t[1]!)) + f(t[2]! * t[2]!))));
  const n = centers.length / 3;
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const d = [0, 1, 2].map((a) => f(centers[3 * i + a]! - t[a]!));
    const dist = f(Math.sqrt(f(f(f(d[0]! * d[0]!) + f(d[1]! * d[1]!)) + f(d[2]! * d[2]!))));
    w[i] = f(1 - Math.max(0, f(f(dist / maxDist) - 0.5)));
  }
  return w;
}
