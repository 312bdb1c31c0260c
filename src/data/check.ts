// Task checks (nnDetection spec §1.4, nndet/utils/check.py): the dataset file, then per case of imagesTr/labelsTr
// (and imagesTs/labelsTs when test_labels) the files, names and label json; with `full` also every image's
// readability, geometry agreement between modalities and label (dimension, size; allclose origin, spacing,
// direction), NaN/Inf voxels, and mask <-> json instance agreement. Every problem is collected, none stops the
// check early (except a missing or unparsable dataset file, without which nothing else can be checked). Read-only.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Dataset, datasetProblems, findDatasetFile, labelJsonProblems, readConfigFile, DATASET_FILES } from "../config/dataset";
import { type NiftiImage, readNifti } from "../io/nifti";
import { labelFile, labelJsonFile, modalityFile, naturalCompare, NII_GZ, type TaskDirs } from "../io/task";
import { statsF32 } from "../native";

export type Rule =
  | "dataset"
  | "folder"
  | "path-dot"
  | "case-name"
  | "not-nii-gz"
  | "missing-modality"
  | "missing-label"
  | "missing-json"
  | "label-json"
  | "empty-file"
  | "unreadable"
  | "geometry"
  | "nan-inf"
  | "label-values"
  | "mask-json";

export interface Problem {
  file: string;
  rule: Rule;
  reason: string;
}

export interface CheckResult {
  problems: Problem[];
  dataset: Dataset | null;
  cases: { Tr: number; Ts: number };
}

export interface CheckOptions {
  full?: boolean;
  /** Called with a progress line every `every` cases of the full check. */
  progress?: (line: string) => void;
  every?: number;
}

/** numpy.allclose defaults (rtol 1e-5, atol 1e-8), as nnDetection's _full_check. */
function allclose(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i]! - b[i]!) <= 1e-8 + 1e-5 * Math.abs(b[i]!))) return false;
  return true;
}

function fmt(a: ArrayLike<number>): string {
  return `(${Array.from(a, (x) => +x.toFixed(6)).join(", ")})`;
}

export async function checkTask(task: TaskDirs, opts: CheckOptions = {}): Promise<CheckResult> {
  const problems: Problem[] = [];
  const add = (file: string, rule: Rule, reason: string) => problems.push({ file, rule, reason });
  const result: CheckResult = { problems, dataset: null, cases: { Tr: 0, Ts: 0 } };

  const dsFile = findDatasetFile(task.dir);
  if (!dsFile) {
    add(task.dir, "dataset", `no ${DATASET_FILES.join(" | ")} in the task folder`);
    return result;
  }
  let raw: unknown;
  try {
    raw = readConfigFile(dsFile);
  } catch (e) {
    add(dsFile, "dataset", (e as Error).message.replace(`${dsFile}: `, ""));
    return result;
  }
  const dsProblems = datasetProblems(raw);
  for (const p of dsProblems) add(dsFile, "dataset", p);
  const ds = raw as Dataset;
  const usable = typeof ds?.labels === "object" && ds.labels !== null && typeof ds?.modalities === "object" && ds.modalities !== null;
  if (!usable) return result;
  result.dataset = ds;
  const numMod = Object.keys(ds.modalities).length;

  const splits: ["Tr" | "Ts", string, string][] = [["Tr", task.imagesTr, task.labelsTr]];
  if (ds.test_labels === true) splits.push(["Ts", task.imagesTs, task.labelsTs]);
  for (const [split, imagesDir, labelsDir] of splits) {
    for (const d of [imagesDir, labelsDir]) if (!existsSync(d)) add(d, "folder", `the ${split} folder is missing`);
    if (!existsSync(imagesDir)) continue;
    if (imagesDir.includes(".")) add(imagesDir, "path-dot", "a '.' in the folder path breaks nnDetection's case ids; rename it");
    const ids = scanNames(imagesDir, add, "images");
    if (existsSync(labelsDir)) scanNames(labelsDir, add, "labels");
    result.cases[split] = ids.length;
    if (ids.length === 0) add(imagesDir, "folder", `no {case}_{mod:04d}.nii.gz images in ${split}`);
    let done = 0;
    for (const id of ids) {
      await checkCase(id, imagesDir, labelsDir, numMod, ds, opts.full === true, add);
      done++;
      const every = opts.every ?? 10;
      if (opts.full && opts.progress && (done % every === 0 || done === ids.length)) {
        opts.progress(`check ${task.name} ${split}: ${done}/${ids.length} cases, ${problems.length} problems so far`);
      }
    }
  }
  return result;
}

/** Case ids of a folder's `.nii.gz` files; reports names nnDetection would misread. */
function scanNames(dir: string, add: (f: string, r: Rule, m: string) => void, kind: "images" | "labels"): string[] {
  const ids = new Set<string>();
  for (const f of readdirSync(dir).sort(naturalCompare)) {
    const path = join(dir, f);
    if (!f.endsWith(NII_GZ)) {
      if (f.endsWith(".nii") || f.endsWith(".gz") || f.endsWith(".nrrd") || f.endsWith(".mha")) {
        add(path, "not-nii-gz", "only .nii.gz files are read (nnDetection ignores this file)");
      }
      continue;
    }
    const base = f.slice(0, -NII_GZ.length);
    if (base.includes(".")) {
      add(path, "case-name", "a '.' in the case name: nnDetection splits names on '.'; rename the case");
      continue;
    }
    if (kind === "images") {
      if (!/_\d{4}$/.test(base)) {
        add(path, "case-name", "image names must end in a 4-digit modality suffix: {case}_0000.nii.gz");
        continue;
      }
      ids.add(base.slice(0, -5));
    }
  }
  return [...ids].sort(naturalCompare);
}

function present(file: string, rule: Rule, what: string, add: (f: string, r: Rule, m: string) => void): boolean {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    add(file, rule, `${what} is missing`);
    return false;
  }
  if (size === 0) {
    add(file, "empty-file", `${what} is an empty file`);
    return false;
  }
  return true;
}

async function checkCase(
  id: string,
  imagesDir: string,
  labelsDir: string,
  numMod: number,
  ds: Dataset,
  full: boolean,
  add: (f: string, r: Rule, m: string) => void,
): Promise<void> {
  const mods: string[] = [];
  for (let m = 0; m < numMod; m++) {
    const f = modalityFile(imagesDir, id, m);
    if (present(f, "missing-modality", `modality ${m} (${ds.modalities[String(m)] ?? "?"}) of case ${id}`, add)) mods.push(f);
  }
  const seg = labelFile(labelsDir, id);
  const hasSeg = present(seg, "missing-label", `the label of case ${id}`, add);
  const json = labelJsonFile(labelsDir, id);
  let instances: Map<number, number> | null = null;
  if (present(json, "missing-json", `the label json of case ${id}`, add)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(json, "utf8"));
    } catch (e) {
      add(json, "label-json", `cannot parse (${(e as Error).message})`);
    }
    if (parsed !== undefined) {
      const r = labelJsonProblems(parsed, ds.labels);
      for (const p of r.problems) add(json, "label-json", p);
      instances = r.instances;
    }
  }
  if (!full) return;

  let ref: NiftiImage | null = null;
  for (const f of [...mods, ...(hasSeg ? [seg] : [])]) {
    let img: NiftiImage;
    try {
      img = await readNifti(f);
    } catch (e) {
      add(f, "unreadable", (e as Error).message.replace(`${f}: `, ""));
      continue;
    }
    const s = statsF32(img.data);
    if (s.nan > 0 || s.inf > 0) add(f, "nan-inf", `${s.nan} NaN and ${s.inf} infinite voxels`);
    if (ref === null) ref = img;
    else geometryAgrees(ref, img, add);
    if (f === seg && instances) maskAgrees(img, instances, json, add);
  }
}

function geometryAgrees(ref: NiftiImage, img: NiftiImage, add: (f: string, r: Rule, m: string) => void): void {
  const why: string[] = [];
  const a = ref.geometry;
  const b = img.geometry;
  if (ref.ndim !== img.ndim) why.push(`dimension ${img.ndim} vs ${ref.ndim}`);
  if (ref.shape.join() !== img.shape.join()) why.push(`size ${fmt([...img.shape].reverse())} vs ${fmt([...ref.shape].reverse())}`);
  if (!allclose(b.spacing, a.spacing)) why.push(`spacing ${fmt(b.spacing)} vs ${fmt(a.spacing)}`);
  if (!allclose(b.origin, a.origin)) why.push(`origin ${fmt(b.origin)} vs ${fmt(a.origin)}`);
  if (!allclose(b.direction, a.direction)) why.push(`direction ${fmt(b.direction)} vs ${fmt(a.direction)}`);
  if (why.length) add(img.file, "geometry", `differs from ${ref.file}: ${why.join("; ")}`);
}

function maskAgrees(img: NiftiImage, instances: Map<number, number>, json: string, add: (f: string, r: Rule, m: string) => void): void {
  const ids = new Set<number>();
  const bad = new Set<number>();
  const d = img.data;
  let prev = 0;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    if (v === prev) continue;
    prev = v;
    if (v === 0) continue;
    if (v > 0 && Number.isInteger(v)) ids.add(v);
    else bad.add(v);
  }
  if (bad.size > 0) {
    const list = [...bad].slice(0, 5).join(", ");
    add(img.file, "label-values", `instance masks hold non-negative integers; found ${list}${bad.size > 5 ? ", ..." : ""}`);
  }
  const extra = [...ids].filter((i) => !instances.has(i)).sort((x, y) => x - y);
  const missing = [...instances.keys()].filter((i) => !ids.has(i)).sort((x, y) => x - y);
  if (extra.length) add(json, "mask-json", `mask ids ${extra.join(", ")} are not listed in the json (instance lost)`);
  if (missing.length) add(json, "mask-json", `json instances ${missing.join(", ")} do not occur in the mask ${img.file}`);
}
