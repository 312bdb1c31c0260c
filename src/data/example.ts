// The toy task of nnDetection's `nndet_example` (scripts/generate_example.py, spec §2): per case a 256^3 volume of
// uniform noise in [0, 1) with one object of class 0 (solid cube, "Square") or class 1 (square tube open along array
// axis 0, "SquareHole"), edge 16..31, wall 4, +0.4 intensity on the object, clipped to [0, 1]; instance id 1 and
// json {"instances": {"1": cls}}; dataset.json with modality "MRI". Draw order per case as nnDetection: sizes and
// classes, the noise, then the top-left corners.
// Our additions: image size (object sizes and wall scale with it; at 256 they are nnDetection's), several
// non-overlapping objects per case (ids 1..K, a one-voxel gap between them), a seed, a task name.
// Randomness: our own generator, not NumPy's MT19937 (same distribution, not the same numbers). Noise voxel i of a
// case is a hash of (case key, i): a counter-based stream, so output never depends on ordering or threads.
// Files: image float32 (nnDetection writes float64), mask uint8 (int16 past 255 objects), identity geometry with
// spacing 1 (SimpleITK's default for an array); each file appears atomically (nifti.ts writes temp + rename).
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defaultGeometry, type Shape3, writeNifti } from "../io/nifti";
import { taskDirs } from "../io/task";

export const DEFAULT_TASK = "Task000D3_Example";

export interface ExampleOptions {
  root: string;
  task?: string;
  numTrain?: number;
  numTest?: number;
  imageSize?: number;
  objectsPerCase?: number;
  seed?: number;
  /** Cases in flight at once (generation of one overlaps the compression of others); default 1. */
  numProcesses?: number;
  progress?: (line: string) => void;
}

/** murmur3's 32-bit finaliser over a mixed key: a fast, well-spread hash for counter-based streams. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

function key(seed: number, idx: number, stream: number): number {
  return mix32(mix32(mix32(seed ^ 0x9e3779b9) ^ Math.imul(idx + 1, 0x27d4eb2f)) ^ Math.imul(stream + 1, 0x165667b1));
}

/** Sequential draws for one case (sizes, classes, corners). */
class CaseRng {
  private n = 0;
  constructor(private readonly k: number) {}
  next(): number {
    return mix32(this.k ^ mix32(Math.imul(++this.n, 0x9e3779b9))) / 4294967296;
  }
  /** Integer in [lo, hi) as Python's randint(lo, hi - 1) / NumPy's randint(lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }
}

/** Object edge range [lo, hi) and wall width for an image size: nnDetection's 16..31 and 4 at 256. */
export function objectScale(n: number): { lo: number; hi: number; wall: number } {
  const wall = Math.max(1, Math.round((4 * n) / 256));
  const lo = Math.max(Math.round((16 * n) / 256), 2 * wall + 2);
  const hi = Math.max(Math.round((32 * n) / 256), lo + 1);
  return { lo, hi, wall };
}

export interface ExampleCase {
  image: Float32Array;
  mask: Uint8Array | Int16Array;
  instances: Record<string, number>;
}

/** One case: `idx` is the global case index (train 0..T-1, then test). */
export function generateCase(idx: number, n: number, objects: number, seed: number): ExampleCase {
  const rng = new CaseRng(key(seed, idx, 0));
  const { lo, hi, wall } = objectScale(n);
  const objs = Array.from({ length: objects }, () => ({ size: rng.int(lo, hi), cls: rng.int(0, 2), tl: [0, 0, 0] }));
  const image = new Float32Array(n * n * n);
  const nk = key(seed, idx, 1);
  for (let i = 0; i < image.length; i++) image[i] = (mix32(nk ^ mix32(i ^ 0x5bd1e995)) >>> 8) / 16777216;
  const placed: { lo: number[]; hi: number[] }[] = [];
  for (const o of objs) {
    let tries = 0;
    for (;;) {
      o.tl = [0, 1, 2].map(() => rng.int(0, n - o.size + 1));
      const box = { lo: o.tl, hi: o.tl.map((t) => t + o.size) };
      // one voxel of background between objects, so every instance stays a separate component
      const free = placed.every((p) => [0, 1, 2].some((a) => box.hi[a]! + 1 <= p.lo[a]! || p.hi[a]! + 1 <= box.lo[a]!));
      if (free) {
        placed.push(box);
        break;
      }
      if (++tries > 10000) throw new Error(`cannot place ${objects} non-overlapping objects in a ${n}^3 image; use fewer objects or a larger --image-size`);
    }
  }
  const mask = objects < 256 ? new Uint8Array(image.length) : new Int16Array(image.length);
  const instances: Record<string, number> = {};
  objs.forEach((o, k) => {
    const id = k + 1;
    instances[String(id)] = o.cls;
    const [z0, y0, x0] = o.tl as [number, number, number];
    for (let z = z0; z < z0 + o.size; z++)
      for (let y = y0; y < y0 + o.size; y++) {
        // class 1: the inner square [tl+wall, tl+size-wall) on axes 1 and 2 is left out, along all of axis 0
        const holeRow = o.cls === 1 && y >= y0 + wall && y < y0 + o.size - wall;
        for (let x = x0; x < x0 + o.size; x++) {
          if (holeRow && x >= x0 + wall && x < x0 + o.size - wall) continue;
          const i = (z * n + y) * n + x;
          image[i] = Math.min(1, image[i]! + 0.4);
          mask[i] = id;
        }
      }
  });
  return { image, mask, instances };
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, file);
}

export function exampleDataset(task: string): Record<string, unknown> {
  const name = task === DEFAULT_TASK ? "Example" : task.slice(task.indexOf("_") + 1);
  return {
    task,
    name,
    target_class: null,
    test_labels: true,
    labels: { "0": "Square", "1": "SquareHole" },
    modalities: { "0": "MRI" },
    dim: 3,
  };
}

/** Write the task; returns its folder. Cases case_0..case_{T-1} go to Tr, case_T.. to Ts (as nnDetection). */
export async function generateExample(opts: ExampleOptions): Promise<string> {
  const task = opts.task ?? DEFAULT_TASK;
  if (!/^Task\d+[A-Za-z0-9]*_[A-Za-z0-9_-]+$/.test(task)) {
    throw new Error(`task name '${task}' must look like Task[Number]_[Name] (letters, digits, '_' or '-'; no '.')`);
  }
  const n = opts.imageSize ?? 256;
  const numTrain = opts.numTrain ?? 10;
  const numTest = opts.numTest ?? 10;
  const objects = opts.objectsPerCase ?? 1;
  const seed = opts.seed ?? 0;
  if (!(n >= 8)) throw new Error(`--image-size must be at least 8, got ${n}`);
  if (!(objects >= 1)) throw new Error(`--objects-per-case must be at least 1, got ${objects}`);
  const dirs = taskDirs(join(opts.root, task), task);
  for (const d of [dirs.imagesTr, dirs.labelsTr, dirs.imagesTs, dirs.labelsTs]) mkdirSync(d, { recursive: true });
  writeJsonAtomic(join(dirs.dir, "dataset.json"), exampleDataset(task));
  const shape: Shape3 = [n, n, n];
  const geometry = defaultGeometry();
  const total = numTrain + numTest;
  const inFlight = Math.max(1, opts.numProcesses ?? 1);
  let done = 0;
  const one = async (idx: number) => {
    const c = generateCase(idx, n, objects, seed);
    const [img, lab] = idx < numTrain ? [dirs.imagesTr, dirs.labelsTr] : [dirs.imagesTs, dirs.labelsTs];
    await writeNifti(join(img, `case_${idx}_0000.nii.gz`), { data: c.image, shape, geometry });
    await writeNifti(join(lab, `case_${idx}.nii.gz`), { data: c.mask, shape, geometry });
    writeJsonAtomic(join(lab, `case_${idx}.json`), { instances: c.instances });
    done++;
    if (opts.progress && (done % 10 === 0 || done === total)) opts.progress(`example ${task}: ${done}/${total} cases`);
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(inFlight, total) }, async () => {
      while (next < total) await one(next++);
    }),
  );
  return dirs.dir;
}
