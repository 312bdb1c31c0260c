// dataset.yaml | dataset.yml | dataset.json of a task (nnDetection spec §1.2), and the label json of a case (§1.3),
// validated with valibot. The rules nnDetection's check_dataset_file applies beyond types (label indices 0..K-1,
// dim 2 or 3) are in datasetProblems(), so a check can report every one of them at once.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import YAML from "yaml";

const StrMap = v.record(v.string(), v.string());

export const DatasetSchema = v.looseObject({
  task: v.string(),
  name: v.optional(v.string()),
  dim: v.pipe(v.number(), v.integer()),
  labels: StrMap,
  modalities: StrMap,
  target_class: v.optional(v.nullable(v.pipe(v.number(), v.integer()))),
  test_labels: v.optional(v.boolean()),
  seg2det_stuff: v.optional(v.array(v.unknown())),
  seg2det_things: v.optional(v.array(v.unknown())),
  min_size: v.optional(v.number()),
  min_vol: v.optional(v.number()),
});
export type Dataset = v.InferOutput<typeof DatasetSchema>;

/** Search order of nnDetection's load_dataset_info. */
export const DATASET_FILES = ["dataset.yaml", "dataset.yml", "dataset.json"] as const;

export function findDatasetFile(taskDir: string): string | null {
  for (const f of DATASET_FILES) if (existsSync(join(taskDir, f))) return join(taskDir, f);
  return null;
}

/** Parse the file as yaml or json (by extension); throws with the file name on syntax errors. */
export function readConfigFile(file: string): unknown {
  const text = readFileSync(file, "utf8");
  try {
    return file.endsWith(".json") ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new Error(`${file}: cannot parse (${(e as Error).message.split("\n")[0]})`);
  }
}

/** Every problem of a parsed dataset file, as human-readable reasons (empty: valid). */
export function datasetProblems(raw: unknown): string[] {
  const out: string[] = [];
  const r = v.safeParse(DatasetSchema, raw);
  if (!r.success) {
    for (const issue of r.issues) {
      const path = v.getDotPath(issue) ?? "(root)";
      out.push(`field '${path}': ${issue.message}`);
    }
    return out;
  }
  const d = r.output;
  if (d.dim !== 2 && d.dim !== 3) out.push(`field 'dim': must be 2 or 3, got ${d.dim}`);
  const keys = Object.keys(d.labels);
  const idx = keys.map((k) => (/^\d+$/.test(k) ? Number(k) : Number.NaN));
  const sorted = [...idx].sort((a, b) => a - b);
  if (sorted.some((x, i) => x !== i)) {
    out.push(`field 'labels': keys must be the class indices "0".."${keys.length - 1}" (background is not listed), got ${JSON.stringify(keys)}`);
  }
  const mk = Object.keys(d.modalities);
  const midx = mk.map((k) => (/^\d+$/.test(k) ? Number(k) : Number.NaN)).sort((a, b) => a - b);
  if (mk.length === 0) out.push("field 'modalities': at least one modality is needed");
  else if (midx.some((x, i) => x !== i)) {
    out.push(`field 'modalities': keys must be "0".."${mk.length - 1}", got ${JSON.stringify(mk)}`);
  }
  if (d.test_labels === undefined) out.push("field 'test_labels': missing (nndet prep reads it; set true or false)");
  if (d.target_class !== undefined && d.target_class !== null && !(String(d.target_class) in d.labels)) {
    out.push(`field 'target_class': ${d.target_class} is not a key of labels`);
  }
  return out;
}

/** Load and validate a task's dataset file; throws one error listing every problem. */
export function loadDataset(taskDir: string): { file: string; dataset: Dataset } {
  const file = findDatasetFile(taskDir);
  if (!file) throw new Error(`${taskDir}: no ${DATASET_FILES.join(" | ")} found`);
  const raw = readConfigFile(file);
  const problems = datasetProblems(raw);
  if (problems.length > 0) throw new Error(`${file}: ${problems.join("; ")}`);
  return { file, dataset: v.parse(DatasetSchema, raw) };
}

/** Instances of a label json (`{"instances": {"1": 0}}`), or the reasons it is not valid against `labels`. */
export function labelJsonProblems(raw: unknown, labels: Record<string, string>): { instances: Map<number, number>; problems: string[] } {
  const problems: string[] = [];
  const instances = new Map<number, number>();
  const inst = (raw as { instances?: unknown } | null)?.instances;
  if (typeof raw !== "object" || raw === null || typeof inst !== "object" || inst === null || Array.isArray(inst)) {
    return { instances, problems: ['must be an object with an "instances" object, e.g. {"instances": {"1": 0}}'] };
  }
  const ids: number[] = [];
  for (const [k, c] of Object.entries(inst as Record<string, unknown>)) {
    if (!/^[1-9]\d*$/.test(k)) {
      problems.push(`instance id "${k}" is not a positive integer string`);
      continue;
    }
    ids.push(Number(k));
    if (typeof c !== "number" || !Number.isInteger(c)) {
      problems.push(`instance ${k}: class ${JSON.stringify(c)} is not an integer`);
      continue;
    }
    if (!(String(c) in labels)) problems.push(`instance ${k}: class ${c} is not in the dataset labels ${JSON.stringify(Object.keys(labels))}`);
    instances.set(Number(k), c);
  }
  ids.sort((a, b) => a - b);
  if (ids.some((id, i) => id !== i + 1)) {
    problems.push(`instance ids must be 1..${ids.length}, got ${ids.join(", ")}`);
  }
  return { instances, problems };
}
