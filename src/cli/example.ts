// nndet example (nnDetection's nndet_example): writes the toy task Task000D3_Example into det_data — 10 train and
// 10 test cases of 256^3 (--full: 1000 + 1000). Ours: --image-size, --num-train, --num-test, --objects-per-case,
// --seed, --task. --num_processes N: cases in flight at once (one is generated while others are compressed on the
// gzip worker pool, sized by det_num_threads); 0 or 1 is sequential.
import { defineCommand } from "citty";
import { detData, detVerbose } from "../config/env";
import { DEFAULT_TASK, generateExample } from "../data/example";

function int(v: unknown, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`);
  return n;
}

export default defineCommand({
  meta: { name: "example", description: "Generate nnDetection's toy task (cubes and square tubes in noise)" },
  args: {
    full: { type: "boolean", description: "1000 train + 1000 test cases instead of 10 + 10" },
    num_processes: { type: "string", alias: ["np"], description: "Cases generated at once (default 0: one at a time)" },
    "image-size": { type: "string", description: "Edge of the cubic image (default 256; objects scale with it)" },
    "num-train": { type: "string", description: "Train cases (default 10, --full 1000)" },
    "num-test": { type: "string", description: "Test cases (default 10, --full 1000)" },
    "objects-per-case": { type: "string", description: "Non-overlapping objects per case, ids 1..K (default 1)" },
    seed: { type: "string", description: "Seed of the generator (default 0)" },
    task: { type: "string", description: `Task folder name (default ${DEFAULT_TASK})` },
  },
  async run({ args }) {
    const a = args as Record<string, unknown>;
    const full = a.full === true;
    const root = detData().value;
    const t0 = performance.now();
    const total = { train: int(a["num-train"], "num-train", full ? 1000 : 10), test: int(a["num-test"], "num-test", full ? 1000 : 10) };
    const dir = await generateExample({
      root,
      task: a.task === undefined ? undefined : String(a.task),
      numTrain: total.train,
      numTest: total.test,
      imageSize: int(a["image-size"], "image-size", 256),
      objectsPerCase: int(a["objects-per-case"], "objects-per-case", 1),
      seed: int(a.seed, "seed", 0),
      numProcesses: int(a.num_processes, "num_processes", 0),
      progress: detVerbose() ? (l) => console.error(l) : undefined,
    });
    const secs = (performance.now() - t0) / 1000;
    const n = total.train + total.test;
    console.log(`wrote ${dir}: ${total.train} train + ${total.test} test cases in ${secs.toFixed(1)} s (${(secs / Math.max(1, n)).toFixed(2)} s per case)`);
    return 0;
  },
});
