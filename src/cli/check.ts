// nndet check TASK [--full] (nnDetection's check in nndet_prep; `--full_check` spelling accepted): reports every
// problem of a task's raw data, each with its file and rule, and exits 1; a one-line summary and exit 0 otherwise.
// Never modifies the data. Progress lines (full check) go to stderr unless det_verbose=0.
import { defineCommand } from "citty";
import { detData, detVerbose } from "../config/env";
import { checkTask } from "../data/check";
import { resolveTask } from "../io/task";

export default defineCommand({
  meta: { name: "check", description: "Check a task's raw data (dataset file, names, label json; --full: images too)" },
  args: {
    task: { type: "positional", required: true, description: "Task012_LIDC, 012, 012_LIDC or LIDC" },
    full: { type: "boolean", description: "Also read every image: geometry, NaN/Inf, mask vs json instances" },
    full_check: { type: "boolean", description: "nnDetection's spelling of --full" },
  },
  async run({ args }) {
    const a = args as Record<string, unknown>;
    const full = a.full === true || a.full_check === true || a.fullCheck === true;
    const task = resolveTask(String(args.task), detData().value);
    const t0 = performance.now();
    const verbose = detVerbose();
    const r = await checkTask(task, { full, progress: verbose ? (l) => console.error(l) : undefined });
    if (r.problems.length > 0) {
      for (const p of r.problems) console.error(`${p.file}: [${p.rule}] ${p.reason}`);
      console.error(`nndet check: ${r.problems.length} problem${r.problems.length > 1 ? "s" : ""} in ${task.name}`);
      return 1;
    }
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`${task.name}: ok (${r.cases.Tr} train, ${r.cases.Ts} test cases checked${full ? ", full" : ""}; ${secs} s)`);
    return 0;
  },
});
