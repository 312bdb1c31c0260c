// Instance boxes and IoU in nnDetection's convention (spec §5.0): box = (x1, y1, x2, y2, z1, z2) over
// array axes 0, 1, 2; an instance spanning voxels a..b (inclusive) along an axis gets edges [a − 1, b + 1]
// (`instances_to_boxes`). Sizes, volumes and IoU are continuous (no +1).

export type Box = [number, number, number, number, number, number];

/** Boxes of every instance id > 0 in a label volume [d0, d1, d2], sorted by id. */
export function instancesToBoxes(seg: Int32Array, dims: readonly number[]): { ids: number[]; boxes: Box[]; voxels: number[] } {
  const [d0, d1, d2] = dims as [number, number, number];
  const ext = new Map<number, number[]>(); // id -> [lo0, hi0, lo1, hi1, lo2, hi2, count]
  let i = 0;
  for (let a = 0; a < d0; a++) {
    for (let b = 0; b < d1; b++) {
      for (let c = 0; c < d2; c++, i++) {
        const id = seg[i]!;
        if (id <= 0) continue;
        let e = ext.get(id);
        if (!e) {
          e = [a, a, b, b, c, c, 0];
          ext.set(id, e);
        }
        if (a < e[0]!) e[0] = a;
        if (a > e[1]!) e[1] = a;
        if (b < e[2]!) e[2] = b;
        if (b > e[3]!) e[3] = b;
        if (c < e[4]!) e[4] = c;
        if (c > e[5]!) e[5] = c;
        e[6]!++;
      }
    }
  }
  const ids = [...ext.keys()].sort((p, q) => p - q);
  const boxes = ids.map((id) => {
    const e = ext.get(id)!;
    return [e[0]! - 1, e[2]! - 1, e[1]! + 1, e[3]! + 1, e[4]! - 1, e[5]! + 1] as Box;
  });
  return { ids, boxes, voxels: ids.map((id) => ext.get(id)![6]!) };
}

/** Extent of a box along array axes 0, 1, 2. */
export function boxSize(b: readonly number[]): [number, number, number] {
  return [b[2]! - b[0]!, b[3]! - b[1]!, b[5]! - b[4]!];
}

export function boxIou(a: readonly number[], b: readonly number[]): number {
  const i0 = Math.max(0, Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!));
  const i1 = Math.max(0, Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!));
  const i2 = Math.max(0, Math.min(a[5]!, b[5]!) - Math.max(a[4]!, b[4]!));
  const inter = i0 * i1 * i2;
  const va = (a[2]! - a[0]!) * (a[3]! - a[1]!) * (a[5]! - a[4]!);
  const vb = (b[2]! - b[0]!) * (b[3]! - b[1]!) * (b[5]! - b[4]!);
  return inter / (va + vb - inter);
}

/** IoUs of all ordered pairs (i ≠ j), i.e. the IoU matrix with its diagonal removed, row-major. */
export function pairwiseIous(boxes: readonly Box[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < boxes.length; i++) for (let j = 0; j < boxes.length; j++) if (i !== j) out.push(boxIou(boxes[i]!, boxes[j]!));
  return out;
}
