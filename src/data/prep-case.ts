// One case of `nndet prep` (prep-task.ts runs them): stage 1 (read the raw NIfTI case, crop, analyse,
// write raw_cropped + the per-case fingerprint + the original-space GT cache) and stage 4 (preprocess the
// cropped case with a plan and write its arrays). Both run in the main thread or in a prep Worker
// (prep-worker.ts); every file is written atomically, the case's marker json last.
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { readNifti } from "../io/nifti";
import { readNpy, writeNpy } from "../io/npy";
import { labelFile, labelJsonFile, modalityFile, type TaskDirs } from "../io/task";
import { roundLabels, type Shape3 } from "../native";
import type { Plan } from "../plan/types";
import type { CroppedCase } from "./crop";
import { cropToNonzero } from "./crop";
import { analyzeCase, foregroundSamples } from "./fingerprint";
import { writeGtCache, writeJsonAtomic } from "./gt-cache";
import { preprocessCase } from "./preprocess";

export async function readLabel(file: string): Promise<{ seg: Int32Array; shape: Shape3 }> {
  const img = await readNifti(file);
  return { seg: roundLabels(img.data), shape: img.shape };
}

export function readInstances(file: string): Record<string, number> {
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
export async function cropCase(t: TaskDirs, pre: string, caseId: string, channels: number, numClasses: number): Promise<void> {
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
  // NOTE: nnDetection keeps seg as a last float channel of one npz; separate arrays (as in the
  // preprocessed folder) spare a conversion and a copy each way.
  writeNpy(join(cropDir, `${caseId}_seg.npy`), c.seg, [1, ...c.shape]);
  writeNpy(join(cropDir, `${caseId}.npy`), c.data, [channels, ...c.shape]);
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

/** The cropped case back from raw_cropped (memory-mapped, copy-on-write). */
export function loadCropped(cropDir: string, caseId: string): { c: CroppedCase; props: Record<string, unknown> } {
  const props = JSON.parse(readFileSync(join(cropDir, `${caseId}.json`), "utf8")) as Record<string, unknown>;
  const arr = readNpy<Float32Array>(join(cropDir, `${caseId}.npy`));
  const seg = readNpy<Int32Array>(join(cropDir, `${caseId}_seg.npy`));
  const shape = arr.shape.slice(1) as Shape3;
  if (arr.dtype !== "f4" || seg.dtype !== "i4" || seg.shape.slice(1).join() !== shape.join()) {
    throw new Error(`${cropDir}/${caseId}: cropped data ${arr.dtype} ${JSON.stringify(arr.shape)} and seg ${seg.dtype} ${JSON.stringify(seg.shape)} do not match`);
  }
  return {
    c: { data: arr.data, seg: seg.data, channels: arr.shape[0]!, shape, bbox: props.crop_bbox as [number, number][], classes: props.classes as number[] },
    props,
  };
}

/** Stage 4 for one case and plan. */
export function preprocessOne(cropDir: string, planDir: string, caseId: string, plan: Plan): string[] {
  const { c, props } = loadCropped(cropDir, caseId);
  const instances = props.instances as Record<string, number>;
  const r = preprocessCase(c, props.original_spacing as number[], instances, plan);
  const warnings = r.lost.length ? [`warning: ${caseId}: instances ${r.lost.join(", ")} vanished in resampling to ${plan.data_identifier}`] : [];
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
  return warnings;
}

