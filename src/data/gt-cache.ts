// Ground-truth caches for evaluation (spec §4.3; nnDetection `planning/experiment/utils.py`), per case:
//   {case}_boxes_gt.json      {boxes [N][6], classes [N], instances [N] ids, mapping {id: class}}
//   {case}_instances_gt.npy   instance map [1, d0, d1, d2] (0 background; smallest of u1/i2/i4 that fits)
//   {case}_seg_gt.npy         semantic map [1, d0, d1, d2] = class + 1 on instances, 0 elsewhere
// in preprocessed/labelsTr|labelsTs (original voxel space, uncropped) and preprocessed/<plan>/labelsTr
// (cropped, resampled, transposed). NOTE: nnDetection stores int32 .npz; we store unpacked .npy in the
// smallest integer type (a 256³ map is 16 MiB instead of 64 MiB).
import { writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { writeNpy } from "../io/npy";
import { labelBoxes, type Shape3 } from "../native";

function smallest(maxValue: number, n: number): Uint8Array | Int16Array | Int32Array {
  return maxValue <= 255 ? new Uint8Array(n) : maxValue <= 32767 ? new Int16Array(n) : new Int32Array(n);
}

/** Write a JSON file atomically (temp name, then rename). */
export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 1));
  renameSync(tmp, path);
}

/** Write the three GT cache files of one case from an instance map (values ≤ 0 are background). */
export function writeGtCache(dir: string, caseId: string, seg: Int32Array, dims: number[], mapping: Record<string, number>): void {
  const { ids, boxes } = labelBoxes(seg, dims as Shape3);
  const known = ids.filter((id) => mapping[String(id)] !== undefined);
  const maxId = ids.length ? ids[ids.length - 1]! : 0;
  const inst = smallest(maxId, seg.length);
  const maxCls = Math.max(0, ...Object.values(mapping)) + 1;
  const sem = smallest(maxCls, seg.length);
  for (let i = 0; i < seg.length; i++) {
    const v = seg[i]!;
    if (v > 0) {
      inst[i] = v;
      const c = mapping[v];
      sem[i] = c === undefined ? 0 : c + 1;
    }
  }
  writeNpy(join(dir, `${caseId}_instances_gt.npy`), inst, [1, ...dims]);
  writeNpy(join(dir, `${caseId}_seg_gt.npy`), sem, [1, ...dims]);
  writeJsonAtomic(join(dir, `${caseId}_boxes_gt.json`), {
    boxes: known.map((id) => boxes[ids.indexOf(id)]!),
    classes: known.map((id) => mapping[String(id)]!),
    instances: known,
    mapping,
  });
}
