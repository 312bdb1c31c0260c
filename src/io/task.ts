// Task folders under det_data (nnDetection spec §1.1): task resolution as nnDetection's get_task, the raw_splitted
// layout, and case ids from `{case}_{mod:04d}.nii.gz` names.
//   ${det_data}/TaskXXX_Name/{dataset.yaml|yml|json, raw_splitted/{imagesTr,labelsTr,imagesTs,labelsTs}/}
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { detData } from "../config/env";

export interface TaskDirs {
  name: string;
  dir: string;
  raw: string;
  imagesTr: string;
  labelsTr: string;
  imagesTs: string;
  labelsTs: string;
}

export function taskDirs(dir: string, name: string): TaskDirs {
  const raw = join(dir, "raw_splitted");
  return {
    name,
    dir,
    raw,
    imagesTr: join(raw, "imagesTr"),
    labelsTr: join(raw, "labelsTr"),
    imagesTs: join(raw, "imagesTs"),
    labelsTs: join(raw, "labelsTs"),
  };
}

/**
 * nnDetection's get_task: accepts `Task012_LIDC`, `012`, `012_LIDC` or `LIDC`. Among folders whose name contains
 * "Task" (prefix stripped), take the unique one containing the id, else the unique one whose part before the first
 * `_` equals it, else the unique one whose part after the first `_` equals it.
 */
export function resolveTask(id: string, root: string = detData().value): TaskDirs {
  const want = id.startsWith("Task") ? id.slice(4) : id;
  let names: string[] = [];
  try {
    names = readdirSync(root).filter((d) => d.includes("Task") && statSync(join(root, d)).isDirectory());
  } catch {
    throw new Error(`det_data ${root} is not a readable folder (set det_data to the folder holding your Task* folders)`);
  }
  const stripped = names.map((n) => (n.startsWith("Task") ? n.slice(4) : n));
  const pick = (pred: (t: string) => boolean): number | null => {
    const hits = stripped.map((t, i) => (pred(t) ? i : -1)).filter((i) => i >= 0);
    return hits.length === 1 ? hits[0]! : null;
  };
  const i =
    pick((t) => t.includes(want)) ??
    pick((t) => t.split("_")[0] === want) ??
    pick((t) => t.includes("_") && t.slice(t.indexOf("_") + 1) === want);
  if (i === null) {
    const close = stripped.filter((t) => t.includes(want)).map((t) => `Task${t}`);
    const why = close.length > 1 ? `ambiguous: ${close.join(", ")}` : `found ${names.length ? names.join(", ") : "no Task* folders"}`;
    throw new Error(`cannot find task '${id}' in det_data ${root} (${why})`);
  }
  return taskDirs(join(root, names[i]!), names[i]!);
}

export const NII_GZ = ".nii.gz";

/** `.nii.gz` file names in a folder (sorted); [] when it does not exist. */
export function niftiFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(NII_GZ))
    .sort();
}

/**
 * Case ids of an images folder: names without `.nii.gz` and without the 5-character `_XXXX` modality suffix
 * (nnDetection: `name.split(".")[0][:-5]`, so a '.' inside a name cuts it; check.ts reports such names).
 */
export function caseIds(imagesDir: string): string[] {
  const ids = new Set<string>();
  for (const f of niftiFiles(imagesDir)) ids.add(f.split(".")[0]!.slice(0, -5));
  return [...ids].sort(naturalCompare);
}

/** `case_2` before `case_10`. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

export function modalityFile(imagesDir: string, caseId: string, mod: number): string {
  return join(imagesDir, `${caseId}_${String(mod).padStart(4, "0")}${NII_GZ}`);
}

export function labelFile(labelsDir: string, caseId: string): string {
  return join(labelsDir, `${caseId}${NII_GZ}`);
}

export function labelJsonFile(labelsDir: string, caseId: string): string {
  return join(labelsDir, `${caseId}.json`);
}
