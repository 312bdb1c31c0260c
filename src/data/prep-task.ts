// `nndet prep` as an API (spec §0, §3, §4): check → crop + analyse each case → fingerprint → plans →
// preprocess each case per plan → GT caches. Output layout under the task folder:
//   raw_cropped/imagesTr/{case}.npy   float32 [C+1, …] cropped data with seg (−1 outside) as last channel
//   raw_cropped/imagesTr/{case}.json  case properties (nnDetection's names)
//   preprocessed/properties/cases/{case}.json, {case}_fg.npy   per-case fingerprint, foreground samples
//   preprocessed/properties/fingerprint.json
//   preprocessed/D3V001_3d.json [, D3V001_3dlr1.json], plan.md, analysis/<plan>/object_sizes.svg
//   preprocessed/<plan>/imagesTr/{case}.npy (float32 [C, …]), {case}_seg.npy (int32 [1, …]),
//                               {case}_boxes.json, {case}.json (written last: marks the case done)
//   preprocessed/<plan>/labelsTr/, preprocessed/labelsTr/, labelsTs/   GT caches (gt-cache.ts)
// Every file is written atomically and every stage skips finished cases, so a killed run resumes.
// Cases run `np` (crop) / `npp` (preprocess) at a time: the async file reads of one overlap the
// native-pool work of another.
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { join, relative } from "node:path";
import { loadDataset } from "../config/dataset";
import { readNifti } from "../io/nifti";
import { readNpy, writeNpy } from "../io/npy";
import { caseIds, labelFile, labelJsonFile, modalityFile, type TaskDirs } from "../io/task";
import type { Shape3 } from "../native";
import { planD3V001, type PlannerOptions } from "../plan/planner";
import { planMarkdown, planSvg } from "../plan/report";
import { type Plan, parsePlan } from "../plan/types";
import { checkTask } from "./check";
import { cropToNonzero, type CroppedCase } from "./crop";
import { analyzeCase, buildFingerprint, type CaseFingerprint, CaseFingerprintSchema, foregroundSamples, parseFingerprint } from "./fingerprint";
import { writeGtCache, writeJsonAtomic } from "./gt-cache";
import { preprocessCase } from "./preprocess";
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

/** Run `fn` over `items`, at most `limit` at a time, in order of start. */
export async function pool<T>(items: T[], limit: number, fn: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, run));
}

async function readLabel(file: string): Promise<{ seg: Int32Array; shape: Shape3 }> {
  const img = await readNifti(file);
  const seg = new Int32Array(img.data.length);
  for (let i = 0; i < seg.length; i++) seg[i] = Math.round(img.data[i]!);
  return { seg, shape: img.shape };
}

function readInstances(file: string): Record<string, number> {
  const j = JSON.parse(readFileSync(file, "utf8")) as { instances?: Record<string, number> };
  return { ...(j.instances ?? {}) };
}

/** Load a case's modalities stacked as float32 [C, …] (all must share one shape). */
async function readImages(dir: string, caseId: string, channels: number) {
  const imgs = [];
  for (let m = 0; m < channels; m++) imgs.push(await readNifti(modalityFile(dir, caseId, m)));
  const first = imgs[0]!;
  const n = first.data.length;
  const data = new Float32Array(channels * n);
  imgs.forEach((im, m) => {
    if (im.data.length !== n) throw new Error(`${im.file}: shape ${im.shape} differs from ${first.file}'s ${first.shape}`);
    data.set(im.data, m * n);
  });
  return { data, shape: first.shape, spacing: first.spacing, geometry: first.geometry, files: imgs.map((i) => i.file) };
}

/** Stage 1 for one training case: crop, analyse, GT cache in original space. */
async function cropCase(t: TaskDirs, pre: string, caseId: string, channels: number, numClasses: number): Promise<void> {
  const cropDir = join(t.dir, "raw_cropped", "imagesTr");
  const caseDir = join(pre, "properties", "cases");
  const img = await readImages(t.imagesTr, caseId, channels);
  const { seg, shape } = await readLabel(labelFile(t.labelsTr, caseId));
  if (shape.some((d, i) => d !== img.shape[i])) throw new Error(`${caseId}: label shape ${shape} differs from image shape ${img.shape}`);
  const instances = readInstances(labelJsonFile(t.labelsTr, caseId));
  writeGtCache(join(pre, "labelsTr"), caseId, seg, shape, instances);
  const c = cropToNonzero(img.data, channels, img.shape, seg);
  const samples = foregroundSamples(c);
  const fp = analyzeCase({ case: caseId, originalSize: img.shape, spacing: img.spacing, instances }, c, samples, numClasses);
  const n = c.seg.length;
  const stacked = new Float32Array((channels + 1) * n);
  stacked.set(c.data);
  for (let i = 0; i < n; i++) stacked[channels * n + i] = c.seg[i]!;
  writeNpy(join(cropDir, `${caseId}.npy`), stacked, [channels + 1, ...c.shape]);
  const k = samples[0]?.length ?? 0;
  const fg = new Float32Array(channels * k);
  samples.forEach((s, m) => fg.set(s, m * k));
  writeNpy(join(caseDir, `${caseId}_fg.npy`), fg, [channels, k]);
  writeJsonAtomic(join(caseDir, `${caseId}.json`), fp);
  writeJsonAtomic(join(cropDir, `${caseId}.json`), {
    case: caseId,
    original_size_of_raw_data: img.shape,
    original_spacing: img.spacing,
    // relative to the task folder, so a moved task stays valid
    list_of_data_files: img.files.map((f) => relative(t.dir, f)),
    seg_file: relative(t.dir, labelFile(t.labelsTr, caseId)),
    itk_origin: img.geometry.origin,
    itk_spacing: img.geometry.spacing,
    itk_direction: img.geometry.direction,
    instances,
    crop_bbox: c.bbox,
    classes: c.classes,
    size_after_cropping: c.shape,
  });
}

/** The cropped case back from raw_cropped (memory-mapped). */
export function loadCropped(cropDir: string, caseId: string): { c: CroppedCase; props: Record<string, unknown> } {
  const props = JSON.parse(readFileSync(join(cropDir, `${caseId}.json`), "utf8")) as Record<string, unknown>;
  const arr = readNpy<Float32Array>(join(cropDir, `${caseId}.npy`));
  const channels = arr.shape[0]! - 1;
  const shape = arr.shape.slice(1) as Shape3;
  const n = shape[0] * shape[1] * shape[2];
  const seg = new Int32Array(n);
  const s = arr.data.subarray(channels * n);
  for (let i = 0; i < n; i++) seg[i] = Math.round(s[i]!);
  return {
    c: { data: arr.data.subarray(0, channels * n), seg, channels, shape, bbox: props.crop_bbox as [number, number][], classes: props.classes as number[] },
    props,
  };
}

/** Remove temp files a killed run left behind (`name.tmp-PID`, see writeNpy / writeJsonAtomic). */
function removeStaleTemps(dir: string): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) if (/\.tmp-\d+$/.test(f)) unlinkSync(join(dir, f));
}

/** Stage 4 for one case and plan. */
function preprocessOne(cropDir: string, planDir: string, caseId: string, plan: Plan, log: (l: string) => void): void {
  const { c, props } = loadCropped(cropDir, caseId);
  const instances = props.instances as Record<string, number>;
  const r = preprocessCase(c, props.original_spacing as number[], instances, plan);
  if (r.lost.length) log(`  warning: ${caseId}: instances ${r.lost.join(", ")} vanished in resampling to ${plan.data_identifier}`);
  const img = join(planDir, "imagesTr");
  writeNpy(join(img, `${caseId}.npy`), r.data, [c.channels, ...r.shape]);
  writeNpy(join(img, `${caseId}_seg.npy`), r.seg, [1, ...r.shape]);
  writeJsonAtomic(join(img, `${caseId}_boxes.json`), r.boxes);
  writeGtCache(join(planDir, "labelsTr"), caseId, r.seg, r.shape, instances);
  writeJsonAtomic(join(img, `${caseId}.json`), {
    ...props,
    size_after_resampling: r.shape,
    spacing_after_resampling: r.spacing,
    use_nonzero_mask_for_norm: plan.use_mask_for_norm,
  });
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
  let done = 0;
  await pool(todo, opts.np ?? 4, async (id) => {
    await cropCase(t, pre, id, channels, numClasses);
    log(`  ${id} (${++done}/${todo.length})`);
  });
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
    let k = 0;
    await pool(left, opts.npp ?? 3, async (id) => {
      preprocessOne(cropDir, planDir, id, plan, log);
      log(`  ${id} (${++k}/${left.length})`);
      await Promise.resolve();
    });
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
