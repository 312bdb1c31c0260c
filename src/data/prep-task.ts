// `nndet prep` as an API (spec §0, §3, §4): check → crop + analyse each case → fingerprint → plans →
// preprocess each case per plan → GT caches. Output layout under the task folder:
//   raw_cropped/imagesTr/{case}.npy   float32 [C, …] cropped data; {case}_seg.npy int32 [1, …] (−1 outside)
//   raw_cropped/imagesTr/{case}.json  case properties (nnDetection's names)
//   preprocessed/properties/cases/{case}.json, {case}_fg.npy   per-case fingerprint, foreground samples
//   preprocessed/properties/fingerprint.json
//   preprocessed/D3V001_3d.json [, D3V001_3dlr1.json], plan.md, analysis/<plan>/object_sizes.svg
//   preprocessed/<plan>/imagesTr/{case}.npy (float32 [C, …]), {case}_seg.npy (int32 [1, …]),
//                               {case}_boxes.json, {case}.json (written last: marks the case done)
//   preprocessed/<plan>/labelsTr/, preprocessed/labelsTr/, labelsTs/   GT caches (gt-cache.ts)
// Every file is written atomically and every stage skips finished cases, so a killed run resumes.
// Cases run `np` (crop) / `npp` (preprocess) at a time (capped at the CPU count), each on its own Bun
// Worker (prep-worker.ts); with 1, or where Workers cannot start, in this thread.
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { loadDataset } from "../config/dataset";
import { availableParallelism } from "node:os";
import { readNpy } from "../io/npy";
import { caseIds, labelFile, labelJsonFile, type TaskDirs } from "../io/task";
import { planD3V001, type PlannerOptions } from "../plan/planner";
import { planMarkdown, planSvg } from "../plan/report";
import { type Plan, parsePlan } from "../plan/types";
import { checkTask } from "./check";
import { buildFingerprint, type CaseFingerprint, CaseFingerprintSchema, parseFingerprint } from "./fingerprint";
import { writeGtCache, writeJsonAtomic } from "./gt-cache";
import { cropCase, preprocessOne, readInstances, readLabel } from "./prep-case";
import * as v from "valibot";

export interface PrepOptions {
  fullCheck?: boolean;
  noCheck?: boolean;
  /** Cases cropped/analysed at once, and preprocessed at once. */
  np?: number;
  npp?: number;
  planner?: PlannerOptions;
  log?: (line: string) => void;
}

export interface PrepSummary {
  task: string;
  cases: number;
  plans: Plan[];
  seconds: Record<string, number>;
}

/** Run `fn` over `items`, at most `limit` at a time, in order of start; `slot` < limit names the runner. */
export async function pool<T>(items: T[], limit: number, fn: (x: T, i: number, slot: number) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async (slot: number) => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i, slot);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, (_, k) => run(k)));
}

type Job = { op: "crop" | "pre"; args: unknown[] };

/** The Worker entry: next to this file in a dev run; in the compiled binary (built with
 *  src/data/prep-worker.ts as a second entrypoint) at data/prep-worker.ts under the bundle root. */
function workerUrl(): string {
  const inBinary = import.meta.url.includes("$bunfs");
  return new URL(inBinary ? "./data/prep-worker.ts" : "./prep-worker.ts", import.meta.url).href;
}

/** Runs case jobs on Workers (one per slot), or in this thread. */
class Runner {
  private seq = 0;
  private waiting = new Map<number, { resolve: (w: string[]) => void; reject: (e: Error) => void }>();
  private constructor(private workers: Worker[]) {
    for (const w of workers) {
      w.onmessage = (ev: MessageEvent) => {
        const m = ev.data as { id: number; ok: boolean; warnings?: string[]; error?: string };
        const p = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if (m.ok) p?.resolve(m.warnings ?? []);
        else p?.reject(new Error(m.error));
      };
      // A Worker that dies (uncaught error) fails every job in flight rather than leaving prep waiting.
      w.onerror = (e: ErrorEvent) => {
        for (const p of this.waiting.values()) p.reject(new Error(`prep worker failed: ${e.message}`));
        this.waiting.clear();
      };
    }
  }

  get where(): string {
    return this.workers.length ? `${this.workers.length} workers` : "this thread";
  }

  get slots(): number {
    return Math.max(1, this.workers.length);
  }

  /** `n` Workers that answered a ping, or an in-thread runner when n ≤ 1 or they cannot start. */
  static async start(n: number): Promise<Runner> {
    if (n <= 1) return new Runner([]);
    const ws: Worker[] = [];
    try {
      for (let i = 0; i < n; i++) ws.push(new Worker(workerUrl()));
      await Promise.all(
        ws.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              const t = setTimeout(() => reject(new Error("prep worker did not start")), 30000);
              w.onerror = (e) => reject(new Error(String(e.message)));
              w.onmessage = () => {
                clearTimeout(t);
                resolve();
              };
              w.postMessage({ id: -1, op: "ping", args: [] });
            }),
        ),
      );
    } catch {
      for (const w of ws) w.terminate();
      return new Runner([]);
    }
    return new Runner(ws);
  }

  run(slot: number, job: Job): Promise<string[]> {
    const w = this.workers[slot];
    if (!w) {
      if (job.op === "crop") return (cropCase as (...a: unknown[]) => Promise<void>)(...job.args).then(() => []);
      return Promise.resolve((preprocessOne as (...a: unknown[]) => string[])(...job.args));
    }
    const id = this.seq++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.postMessage({ id, ...job });
    });
  }

  close(): void {
    for (const w of this.workers) w.terminate();
  }
}

/** Remove temp files a killed run left behind (`name.tmp-PID`, see writeNpy / writeJsonAtomic). */
function removeStaleTemps(dir: string): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) if (/\.tmp-\d+$/.test(f)) unlinkSync(join(dir, f));
}

/** Run the whole of prep for one task. Throws (before writing anything) when the check finds problems. */
export async function prepTask(t: TaskDirs, opts: PrepOptions = {}): Promise<PrepSummary> {
  const log = opts.log ?? (() => {});
  const seconds: Record<string, number> = {};
  let t0 = performance.now();
  const lap = (name: string) => {
    seconds[name] = (performance.now() - t0) / 1000;
    t0 = performance.now();
  };
  if (!opts.noCheck) {
    log(`check${opts.fullCheck ? " (full)" : ""}: ${t.name}`);
    const r = await checkTask(t, { full: opts.fullCheck });
    if (r.problems.length) {
      const lines = r.problems.map((p) => `${p.file}: [${p.rule}] ${p.reason}`);
      throw new Error(`the data check found ${r.problems.length} problem(s) in ${t.name}; nothing was written:\n${lines.join("\n")}`);
    }
    lap("check");
  }
  const { dataset } = loadDataset(t.dir);
  const channels = Object.keys(dataset.modalities).length;
  const numClasses = Object.keys(dataset.labels).length;
  const pre = join(t.dir, "preprocessed");
  const cropDir = join(t.dir, "raw_cropped", "imagesTr");
  for (const d of [cropDir, join(pre, "properties", "cases"), join(pre, "labelsTr")]) {
    mkdirSync(d, { recursive: true });
    removeStaleTemps(d);
  }

  const ids = caseIds(t.imagesTr);
  if (ids.length === 0) throw new Error(`${t.imagesTr}: no training cases`);
  const todo = ids.filter((id) => !existsSync(join(cropDir, `${id}.json`)) || !existsSync(join(pre, "properties", "cases", `${id}.json`)));
  log(`crop + analyse: ${ids.length} cases (${ids.length - todo.length} already done)`);
  const cores = availableParallelism();
  let runner = await Runner.start(Math.min(opts.np ?? 4, cores, todo.length));
  let done = 0;
  if (todo.length) log(`  on ${runner.where}`);
  try {
    await pool(todo, runner.slots, async (id, _i, slot) => {
      await runner.run(slot, { op: "crop", args: [t, pre, id, channels, numClasses] });
      log(`  ${id} (${++done}/${todo.length})`);
    });
  } finally {
    runner.close();
  }
  lap("crop");

  const fps: CaseFingerprint[] = [];
  const samples: Float32Array[][] = [];
  for (const id of ids) {
    const f = v.parse(CaseFingerprintSchema, JSON.parse(readFileSync(join(pre, "properties", "cases", `${id}.json`), "utf8")));
    for (const lost of f.lostInstances) log(`  warning: ${id}: instance ${lost} of the json is not in the mask (Instance lost)`);
    fps.push(f);
    const s = readNpy<Float32Array>(join(pre, "properties", "cases", `${id}_fg.npy`), { mmap: false });
    const k = s.shape[1]!;
    samples.push(Array.from({ length: channels }, (_, m) => s.data.subarray(m * k, (m + 1) * k)));
  }
  const fp = buildFingerprint(dataset, fps, samples);
  writeJsonAtomic(join(pre, "properties", "fingerprint.json"), fp);
  lap("fingerprint");

  log("plan: D3V001");
  const plans = planD3V001(parseFingerprint(fp), { fingerprintPath: "properties/fingerprint.json", ...opts.planner });
  const svgs: Record<string, string> = {};
  for (const p of plans) {
    writeJsonAtomic(join(pre, `${p.data_identifier}.json`), p);
    const adir = join(pre, "analysis", p.data_identifier);
    mkdirSync(adir, { recursive: true });
    await Bun.write(join(adir, "object_sizes.svg"), planSvg(fp, p));
    svgs[p.data_identifier] = `analysis/${p.data_identifier}/object_sizes.svg`;
  }
  await Bun.write(join(pre, "plan.md"), planMarkdown(t.name, fp, plans, svgs));
  lap("plan");

  for (const plan of plans) {
    const planDir = join(pre, plan.data_identifier);
    for (const d of ["imagesTr", "labelsTr"]) {
      mkdirSync(join(planDir, d), { recursive: true });
      removeStaleTemps(join(planDir, d));
    }
    const left = ids.filter((id) => !existsSync(join(planDir, "imagesTr", `${id}.json`)));
    log(`preprocess ${plan.data_identifier}: ${ids.length} cases (${ids.length - left.length} already done)`);
    runner = await Runner.start(Math.min(opts.npp ?? 3, cores, left.length));
    let k = 0;
    if (left.length) log(`  on ${runner.where}`);
    try {
      await pool(left, runner.slots, async (id, _i, slot) => {
        for (const w of await runner.run(slot, { op: "pre", args: [cropDir, planDir, id, plan] })) log(`  ${w}`);
        log(`  ${id} (${++k}/${left.length})`);
      });
    } finally {
      runner.close();
    }
  }
  lap("preprocess");

  if (dataset.test_labels) {
    const tsDir = join(pre, "labelsTs");
    mkdirSync(tsDir, { recursive: true });
    const ts = caseIds(t.imagesTs).filter((id) => !existsSync(join(tsDir, `${id}_boxes_gt.json`)));
    log(`GT caches labelsTs: ${ts.length} cases`);
    await pool(ts, opts.np ?? 4, async (id) => {
      const { seg, shape } = await readLabel(labelFile(t.labelsTs, id));
      writeGtCache(tsDir, id, seg, shape, readInstances(labelJsonFile(t.labelsTs, id)));
    });
    lap("gt");
  }
  return { task: t.name, cases: ids.length, plans: plans.map((p) => parsePlan(p)), seconds };
}
