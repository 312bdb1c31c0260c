// nndet prep TASK… [-o key=value…] [--full_check] [--no_check] [-np N] [-npp N] (nnDetection's nndet_prep):
// check, crop, fingerprint, plan (D3V001) and preprocess each task; progress per stage on stderr
// (unless det_verbose=0), a summary per plan on stdout. Overrides:
//   planner.memory_gb=N      memory budget of one training step in GiB (default: nnDetection's 11 GB GPU)
//   planner.budget=nndet|cpu budget preset (cpu: 1.5 GiB, for small CPU runs)
//   planner.estimator=nndet|engine  memory model: nnDetection's (PyTorch AMP, the default for its 11 GB
//                            budget) or our engine's exact account (the default for memory_gb and cpu)
//   planner.batch_size=N     batch size (default 4)
//   planner.anchor_budget=N  anchor-search evaluations per run (default 5000)
import { defineCommand } from "citty";
import { detData, detVerbose } from "../config/env";
import { prepTask } from "../data/prep-task";
import { resolveTask } from "../io/task";
import { estimatorFor, memoryBudget } from "../plan/memory";
import type { PlannerOptions } from "../plan/planner";
import type { Plan } from "../plan/types";

/** Split raw args into task ids and `-o` overrides (nnDetection: `-o a=1 b=2`, values until the next flag). */
export function splitPrepArgs(raw: string[]): { tasks: string[]; overrides: Record<string, string> } {
  const tasks: string[] = [];
  const overrides: Record<string, string> = {};
  let inO = false;
  for (let i = 0; i < raw.length; i++) {
    const a = raw[i]!;
    if (a === "-o" || a === "--o" || a === "--overwrites") {
      inO = true;
      continue;
    }
    if (a.startsWith("-")) {
      inO = false;
      if (/^--?(np|npp|num_processes|num_processes_preprocessing)$/.test(a)) i++;
      continue;
    }
    if (inO) {
      const eq = a.indexOf("=");
      if (eq <= 0) throw new Error(`override '${a}' must be key=value`);
      overrides[a.slice(0, eq)] = a.slice(eq + 1);
    } else tasks.push(a);
  }
  return { tasks, overrides };
}

/** Planner options from overrides; unknown keys are errors. */
export function plannerOptions(o: Record<string, string>): PlannerOptions {
  const known = ["planner.memory_gb", "planner.budget", "planner.estimator", "planner.batch_size", "planner.anchor_budget"];
  for (const k of Object.keys(o)) if (!known.includes(k)) throw new Error(`unknown override '${k}' (known: ${known.join(", ")})`);
  const num = (k: string) => {
    const v = Number(o[k]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${k} must be a positive number, got '${o[k]}'`);
    return v;
  };
  const b = { memory_gb: o["planner.memory_gb"] !== undefined ? num("planner.memory_gb") : undefined, budget: o["planner.budget"], estimator: o["planner.estimator"] };
  const est = estimatorFor(b);
  const opts: PlannerOptions = { budgetBytes: memoryBudget(b), estimator: est.fn, estimatorName: est.name };
  if (o["planner.batch_size"] !== undefined) opts.batchSize = Math.round(num("planner.batch_size"));
  if (o["planner.anchor_budget"] !== undefined) opts.anchorSearch = { budget: Math.round(num("planner.anchor_budget")) };
  return opts;
}

function int(v: unknown, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return n;
}

export function planSummary(p: Plan): string {
  const r = (x: number[]) => x.map((v) => +v.toFixed(4)).join(" × ");
  const an = p.anchors.width.map((w, i) => `(${w})×(${p.anchors.height[i]})×(${p.anchors.depth[i]})`);
  return [
    `${p.data_identifier}: target spacing ${r(p.target_spacing)}, patch ${p.patch_size.join(" × ")}, batch ${p.batch_size}`,
    `  topology: ${p.architecture.strides.length} poolings ${p.architecture.strides.map((s) => `[${s}]`).join(" ")}, detection levels ${p.architecture.decoder_levels.join(",")}`,
    `  anchors (width×height×depth per level): ${an.join(" ")}; mean best IoU ${p.anchor_mean_iou.toFixed(3)}`,
    `  memory per training step: ${(p.memory.estimated_bytes / 2 ** 30).toFixed(2)} GiB of ${(p.memory.budget_bytes / 2 ** 30).toFixed(2)} GiB (${p.memory.estimator})`,
  ].join("\n");
}

export default defineCommand({
  meta: { name: "prep", description: "Check, crop, fingerprint, plan and preprocess tasks" },
  args: {
    tasks: { type: "positional", required: true, description: "Task ids (Task012_LIDC, 012, LIDC); several allowed" },
    o: { type: "string", description: "Overrides key=value… (planner.memory_gb, planner.budget, planner.estimator, planner.batch_size, planner.anchor_budget)" },
    full_check: { type: "boolean", description: "Full data check (reads every image) before prep" },
    no_check: { type: "boolean", description: "Skip the data check" },
    np: { type: "string", alias: ["num_processes"], description: "Cases cropped and analysed at once (default 4)" },
    npp: { type: "string", alias: ["num_processes_preprocessing"], description: "Cases preprocessed at once (default 3)" },
  },
  async run({ args, rawArgs }) {
    const a = args as Record<string, unknown>;
    const { tasks, overrides } = splitPrepArgs(rawArgs);
    const planner = plannerOptions(overrides);
    const verbose = detVerbose();
    for (const id of tasks) {
      const t = resolveTask(id, detData().value);
      const t0 = performance.now();
      const s = await prepTask(t, {
        fullCheck: a.full_check === true || a.fullCheck === true,
        noCheck: a.no_check === true || a.noCheck === true,
        np: int(a.np, "np", 4),
        npp: int(a.npp, "npp", 3),
        planner,
        log: verbose ? (l) => console.error(l) : undefined,
      });
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      const stages = Object.entries(s.seconds).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(", ");
      console.log(`${s.task}: ${s.cases} cases prepared in ${secs} s (${stages})`);
      for (const p of s.plans) console.log(planSummary(p));
      console.log(`  report: ${t.dir}/preprocessed/plan.md`);
    }
    return 0;
  },
});
