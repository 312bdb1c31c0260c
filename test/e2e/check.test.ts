// nndet example + nndet check through the CLI (dev run): a small generated task passes `check --full`; one broken
// copy per rule fails with exit 1 naming the file and the rule, and leaves every file untouched; real CT and brain
// lesion data made into tasks pass.
import { beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readNifti, writeNifti } from "../../src/io/nifti";

const ROOT = join(import.meta.dir, "../..");
const REAL = join(ROOT, "test/fixtures/nifti/real");
const TASK = "Task000D3_Example";

function nndet(args: string[], detData: string, env: Record<string, string> = {}) {
  const p = Bun.spawnSync(["bun", "run", join(ROOT, "src/main.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, det_data: detData, ...env },
  });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

function snapshot(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else m.set(p, `${createHash("sha1").update(readFileSync(p)).digest("hex")} ${s.mtimeMs}`);
    }
  };
  walk(dir);
  return m;
}

const base = mkdtempSync(join(tmpdir(), "nndet-check-"));
const good = join(base, "good");

beforeAll(() => {
  const r = nndet(["example", "--image-size", "16", "--num-train", "3", "--num-test", "2", "--objects-per-case", "2", "--seed", "7"], good);
  if (r.code !== 0) throw new Error(`nndet example failed: ${r.err}`);
});

describe("example then check", () => {
  test("a generated task passes check --full, deterministically", async () => {
    const r = nndet(["check", "000", "--full"], good);
    expect(r.err).toBe(r.err); // progress lines are allowed on stderr
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${TASK}: ok (3 train, 2 test cases checked, full`);
    const again = join(base, "again");
    expect(nndet(["example", "--image-size", "16", "--num-train", "3", "--num-test", "2", "--objects-per-case", "2", "--seed", "7"], again).code).toBe(0);
    const a = readFileSync(join(good, TASK, "raw_splitted/imagesTr/case_1_0000.nii.gz"));
    const b = readFileSync(join(again, TASK, "raw_splitted/imagesTr/case_1_0000.nii.gz"));
    expect(Buffer.compare(a, b)).toBe(0);
    const m = await readNifti(join(good, TASK, "raw_splitted/labelsTr/case_1.nii.gz"));
    expect(new Set(m.data).size).toBe(3); // background + instances 1, 2
    const json = JSON.parse(readFileSync(join(good, TASK, "raw_splitted/labelsTr/case_1.json"), "utf8"));
    expect(Object.keys(json.instances)).toEqual(["1", "2"]);
    rmSync(again, { recursive: true, force: true });
  });

  test("--full_check spelling, name resolution, det_verbose=0 silences progress", () => {
    const r = nndet(["check", "Example", "--full_check"], good, { det_verbose: "0" });
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expect(nndet(["check", "Task000D3_Example"], good).code).toBe(0);
    const missing = nndet(["check", "999"], good);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("cannot find task '999'");
  });
});

const t = (d: string) => join(d, TASK, "raw_splitted");
type Breaker = (dir: string) => Promise<void> | void;
const jsonOf = (d: string, c: string, v: unknown) => writeFileSync(join(t(d), "labelsTr", `${c}.json`), JSON.stringify(v));

const broken: [string, string, string, Breaker][] = [
  ["no dataset file", "dataset", "", (d) => unlinkSync(join(d, TASK, "dataset.json"))],
  [
    "labels not 0..K-1",
    "dataset",
    "dataset.json",
    (d) => {
      const f = join(d, TASK, "dataset.json");
      const ds = JSON.parse(readFileSync(f, "utf8"));
      ds.labels = { "1": "Square", "2": "SquareHole" };
      writeFileSync(f, JSON.stringify(ds));
    },
  ],
  [
    "missing modality file",
    "missing-modality",
    "case_0_0001.nii.gz",
    (d) => {
      const f = join(d, TASK, "dataset.json");
      const ds = JSON.parse(readFileSync(f, "utf8"));
      ds.modalities = { "0": "MRI", "1": "CT" };
      writeFileSync(f, JSON.stringify(ds));
    },
  ],
  ["missing label", "missing-label", "labelsTr/case_0.nii.gz", (d) => unlinkSync(join(t(d), "labelsTr/case_0.nii.gz"))],
  ["missing json", "missing-json", "labelsTr/case_2.json", (d) => unlinkSync(join(t(d), "labelsTr/case_2.json"))],
  ["extra json instance", "mask-json", "case_0.json", (d) => jsonOf(d, "case_0", { instances: { "1": 0, "2": 1, "3": 0 } })],
  ["mask instance missing from json", "mask-json", "case_0.json", (d) => jsonOf(d, "case_0", { instances: { "1": 0 } })],
  ["instance ids not 1..N", "label-json", "case_1.json", (d) => jsonOf(d, "case_1", { instances: { "1": 0, "3": 1 } })],
  ["class not in labels", "label-json", "case_1.json", (d) => jsonOf(d, "case_1", { instances: { "1": 0, "2": 7 } })],
  ["bad json", "label-json", "case_1.json", (d) => writeFileSync(join(t(d), "labelsTr/case_1.json"), "{instances: ")],
  [
    "label spacing differs",
    "geometry",
    "labelsTr/case_0.nii.gz",
    async (d) => {
      const f = join(t(d), "labelsTr/case_0.nii.gz");
      const m = await readNifti(f);
      await writeNifti(f, { data: Uint8Array.from(m.data), shape: m.shape, geometry: { ...m.geometry, spacing: [1, 1, 1.5] } });
    },
  ],
  [
    "label shape differs",
    "geometry",
    "labelsTs/case_4.nii.gz",
    async (d) => {
      const f = join(t(d), "labelsTs/case_4.nii.gz");
      const m = await readNifti(f);
      await writeNifti(f, { data: Uint8Array.from(m.data.subarray(0, 16 * 16 * 15)), shape: [15, 16, 16], geometry: m.geometry });
    },
  ],
  [
    "image direction differs",
    "geometry",
    "imagesTr/case_2_0000.nii.gz",
    async (d) => {
      const f = join(t(d), "imagesTr/case_2_0000.nii.gz");
      const m = await readNifti(f);
      await writeNifti(f, { data: m.data, shape: m.shape, geometry: { ...m.geometry, direction: [-1, 0, 0, 0, 1, 0, 0, 0, -1] } });
    },
  ],
  [
    "NaN voxels",
    "nan-inf",
    "imagesTr/case_1_0000.nii.gz",
    async (d) => {
      const f = join(t(d), "imagesTr/case_1_0000.nii.gz");
      const m = await readNifti(f);
      const data = m.data.slice();
      data[5] = Number.NaN;
      data[6] = Number.POSITIVE_INFINITY;
      await writeNifti(f, { data, shape: m.shape, geometry: m.geometry });
    },
  ],
  [
    "non-integer mask values",
    "label-values",
    "labelsTr/case_1.nii.gz",
    async (d) => {
      const f = join(t(d), "labelsTr/case_1.nii.gz");
      const m = await readNifti(f);
      const data = m.data.slice();
      data[0] = 0.5;
      await writeNifti(f, { data, shape: m.shape, geometry: m.geometry });
    },
  ],
  [
    "a '.' in a case name",
    "case-name",
    "case.9_0000.nii.gz",
    (d) => renameSync(join(t(d), "imagesTr/case_2_0000.nii.gz"), join(t(d), "imagesTr/case.9_0000.nii.gz")),
  ],
  ["no modality suffix", "case-name", "imagesTr/case_x.nii.gz", (d) => cpSync(join(t(d), "imagesTr/case_0_0000.nii.gz"), join(t(d), "imagesTr/case_x.nii.gz"))],
  ["empty file", "empty-file", "imagesTr/case_0_0000.nii.gz", (d) => truncateSync(join(t(d), "imagesTr/case_0_0000.nii.gz"), 0)],
  [
    "truncated gzip",
    "unreadable",
    "labelsTr/case_2.nii.gz",
    (d) => {
      const f = join(t(d), "labelsTr/case_2.nii.gz");
      truncateSync(f, statSync(f).size - 12);
    },
  ],
  ["a .nii file", "not-nii-gz", "imagesTr/case_5_0000.nii", (d) => writeFileSync(join(t(d), "imagesTr/case_5_0000.nii"), "x")],
  ["missing labelsTs folder", "folder", "labelsTs", (d) => rmSync(join(t(d), "labelsTs"), { recursive: true })],
];

describe("broken tasks: exit 1, the file and the rule named, nothing modified", () => {
  for (const [name, rule, file, breakIt] of broken) {
    test(name, async () => {
      const d = join(base, name.replace(/[^a-z0-9]+/gi, "-"));
      cpSync(good, d, { recursive: true });
      await breakIt(d);
      const before = snapshot(d);
      const r = nndet(["check", "000", "--full"], d, { det_verbose: "0" });
      expect(snapshot(d)).toEqual(before);
      expect(r.code).toBe(1);
      const lines = r.err.split("\n").filter((l) => l.includes(`[${rule}]`));
      expect(lines.length).toBeGreaterThan(0);
      if (file) expect(lines.some((l) => l.includes(file))).toBe(true);
      rmSync(d, { recursive: true, force: true });
    });
  }

  test("every problem is reported, not only the first", async () => {
    const d = join(base, "many");
    cpSync(good, d, { recursive: true });
    unlinkSync(join(t(d), "labelsTr/case_2.json"));
    jsonOf(d, "case_1", { instances: { "1": 0, "2": 9 } });
    truncateSync(join(t(d), "imagesTs/case_3_0000.nii.gz"), 0);
    const r = nndet(["check", "000", "--full"], d, { det_verbose: "0" });
    expect(r.code).toBe(1);
    for (const rule of ["missing-json", "label-json", "empty-file"]) expect(r.err).toContain(`[${rule}]`);
    expect(r.err).toContain("3 problems");
    rmSync(d, { recursive: true, force: true });
  });
});

/** 6-connected components of `mask == value` (as scipy.ndimage.label's default), ids from `next`. */
function components(mask: Float32Array, shape: [number, number, number], value: number, out: Int16Array, next: number): number {
  const [nk, nj, ni] = shape;
  const queue = new Int32Array(mask.length);
  for (let s = 0; s < mask.length; s++) {
    if (mask[s] !== value || out[s] !== 0) continue;
    let head = 0;
    let tail = 0;
    queue[tail++] = s;
    out[s] = next;
    while (head < tail) {
      const p = queue[head++]!;
      const i = p % ni;
      const j = Math.floor(p / ni) % nj;
      const k = Math.floor(p / (ni * nj));
      const nb = [i > 0 ? p - 1 : -1, i < ni - 1 ? p + 1 : -1, j > 0 ? p - ni : -1, j < nj - 1 ? p + ni : -1, k > 0 ? p - ni * nj : -1, k < nk - 1 ? p + ni * nj : -1];
      for (const q of nb) {
        if (q >= 0 && mask[q] === value && out[q] === 0) {
          out[q] = next;
          queue[tail++] = q;
        }
      }
    }
    next++;
  }
  return next;
}

describe("real data as tasks", () => {
  const cases: [string, string, string, Record<number, number>, Record<string, string>][] = [
    // TotalSegmentator labels: kidneys, adrenal, three vertebrae, six small structures (about 20 objects, some split)
    ["Task101_TotalSeg", "totalseg_ct_sm.nii.gz", "totalseg_seg.nii.gz", { 2: 0, 3: 0, 11: 1, 18: 2, 19: 2, 20: 2, 98: 3, 99: 3, 100: 3, 101: 3, 102: 3, 103: 3 }, { "0": "kidney", "1": "adrenal", "2": "vertebra", "3": "other" }],
    ["Task102_Brain", "pyradiomics_brain1_image.nii.gz", "pyradiomics_brain1_label.nii.gz", { 1: 0 }, { "0": "lesion" }],
  ];
  for (const [task, image, label, classOf, labels] of cases) {
    test(`${task} passes check --full`, async () => {
      const d = join(base, "real");
      const raw = join(d, task, "raw_splitted");
      for (const s of ["imagesTr", "labelsTr"]) mkdirSync(join(raw, s), { recursive: true });
      cpSync(join(REAL, image), join(raw, "imagesTr/case_0_0000.nii.gz"));
      const seg = await readNifti(join(REAL, label));
      const inst = new Int16Array(seg.data.length);
      const instances: Record<string, number> = {};
      let next = 1;
      for (const [lab, cls] of Object.entries(classOf)) {
        const first = next;
        next = components(seg.data, seg.shape, Number(lab), inst, next);
        for (let id = first; id < next; id++) instances[String(id)] = cls;
      }
      expect(next - 1).toBeGreaterThanOrEqual(task === "Task102_Brain" ? 2 : 18);
      await writeNifti(join(raw, "labelsTr/case_0.nii.gz"), { data: inst, shape: seg.shape, geometry: seg.geometry });
      writeFileSync(join(raw, "labelsTr/case_0.json"), JSON.stringify({ instances }));
      const ds = { task, dim: 3, labels, modalities: { "0": task.includes("TotalSeg") ? "CT" : "MRI" }, test_labels: false };
      writeFileSync(join(d, task, "dataset.yaml"), Object.entries(ds).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join("\n"));
      const r = nndet(["check", task.slice(4, 7), "--full"], d, { det_verbose: "0" });
      if (r.code !== 0) throw new Error(r.err);
      expect(r.out).toContain(`${task}: ok (1 train, 0 test cases checked, full`);
    });
  }

  test("cleanup", () => rmSync(base, { recursive: true, force: true }));
});
