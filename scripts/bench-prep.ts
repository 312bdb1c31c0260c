// Benchmark of nndet prep against a Python reference doing the same steps with nibabel/SciPy/scikit-image
// (scripts/bench/prep_ref.py, Debian's /usr/bin/python3), same machine, same thread/process count N:
//   toy   10 cases of 256³ (nndet example; no resampling needed at spacing 1)
//   ct    a CT-like task: one 512×512×100 case at 0.7×0.7×2.0 mm plus two small cases that set the
//         median target spacing 0.8×0.8×2.5 mm, so the big case is resampled (cubic) to 448×448×80
// Reported per task: wall seconds — ours with -np N -npp N (N Workers) and with -np 1 -npp 1 (one thread
// plus the native pool) —, CPU seconds (user + sys; robust when the machine is shared) and peak RSS (MiB;
// /usr/bin/time, for the reference the largest process of its pool). ratio > 1 means ours is better.
//   usage: bun scripts/bench-prep.ts [--threads N] [--dir DIR] [--json]
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateExample } from "../src/data/example";
import { writeNifti } from "../src/io/nifti";
import type { Geometry } from "../src/io/nifti-header";

const argv = process.argv.slice(2);
const opt = (name: string, d: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1]! : d;
};
const json = argv.includes("--json");
const N = Number(opt("--threads", "2"));
const dir = opt("--dir", "/tmp/nndet-bench-prep");
const root = join(import.meta.dir, "..");
const log = (s: string) => {
  if (!json) console.log(s);
};

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** A CT-like case: air (−1000) outside a body cylinder of soft tissue (40 ± 20 HU), spherical lesions. */
async function ctCase(task: string, name: string, shape: [number, number, number], spacing: [number, number, number], seed: number) {
  const [d0, d1, d2] = shape;
  const img = new Int16Array(d0 * d1 * d2);
  const lab = new Uint8Array(d0 * d1 * d2);
  const r = rng(seed);
  const lesions = Array.from({ length: 3 }, () => ({
    c: [d0 * (0.3 + 0.4 * r()), d1 * (0.35 + 0.3 * r()), d2 * (0.35 + 0.3 * r())],
    rad: 6 + 8 * r(), // mm
  }));
  let i = 0;
  for (let a = 0; a < d0; a++) {
    for (let b = 0; b < d1; b++) {
      for (let c = 0; c < d2; c++, i++) {
        const y = (b - d1 / 2) / (d1 * 0.42);
        const x = (c - d2 / 2) / (d2 * 0.38);
        let v = x * x + y * y < 1 ? 40 + 40 * (r() - 0.5) : -1000 + 10 * r();
        lesions.forEach((l, k) => {
          const dz = (a - l.c[0]!) * spacing[0];
          const dy = (b - l.c[1]!) * spacing[1];
          const dx = (c - l.c[2]!) * spacing[2];
          if (dz * dz + dy * dy + dx * dx < l.rad * l.rad) {
            v = 100 + 20 * r();
            lab[i] = k + 1;
          }
        });
        img[i] = Math.round(v);
      }
    }
  }
  const geometry: Geometry = {
    spacing: [spacing[2]!, spacing[1]!, spacing[0]!],
    origin: [0, 0, 0],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  };
  await writeNifti(join(task, "raw_splitted/imagesTr", `${name}_0000.nii.gz`), { data: img, shape, geometry });
  await writeNifti(join(task, "raw_splitted/labelsTr", `${name}.nii.gz`), { data: lab, shape, geometry });
  writeFileSync(join(task, "raw_splitted/labelsTr", `${name}.json`), JSON.stringify({ instances: { "1": 0, "2": 0, "3": 0 } }));
}

async function makeTasks(): Promise<{ toy: string; ct: string }> {
  const toy = join(dir, "Task000D3_Example");
  if (!existsSync(join(toy, "dataset.json"))) {
    log("generating 10 toy cases of 256³ …");
    await generateExample({ root: dir, numTrain: 10, numTest: 0 });
  }
  const ct = join(dir, "Task001_CTBench");
  if (!existsSync(join(ct, "dataset.json"))) {
    log("generating the CT-like task …");
    for (const d of ["imagesTr", "labelsTr"]) mkdirSync(join(ct, "raw_splitted", d), { recursive: true });
    await ctCase(ct, "ct_0", [100, 512, 512], [2.0, 0.7, 0.7], 1);
    await ctCase(ct, "ct_1", [40, 128, 128], [2.5, 0.8, 0.8], 2);
    await ctCase(ct, "ct_2", [40, 128, 128], [3.0, 0.9, 0.9], 3);
    writeFileSync(join(ct, "dataset.json"), JSON.stringify({ task: "Task001_CTBench", dim: 3, labels: { "0": "lesion" }, modalities: { "0": "CT" }, test_labels: false }));
  }
  return { toy, ct };
}

/** Wall seconds, CPU seconds (user + sys, children included) and peak RSS (MiB) under /usr/bin/time -v. */
function timed(cmd: string[], env: Record<string, string>): { s: number; cpu: number; mib: number; out: string } {
  const r = Bun.spawnSync(["/usr/bin/time", "-v", ...cmd], { env: { ...process.env, ...env }, cwd: root });
  const err = r.stderr.toString();
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed:\n${err.slice(-2000)}`);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(err)!;
  const s = Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]);
  const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(err)![1]);
  const cpu = Number(/User time \(seconds\): ([\d.]+)/.exec(err)![1]) + Number(/System time \(seconds\): ([\d.]+)/.exec(err)![1]);
  return { s, cpu, mib: kb / 1024, out: r.stdout.toString() };
}

const { toy, ct } = await makeTasks();
const rows: { case: string; metric: string; ours: number; reference: number; ratio: number }[] = [];
for (const [label, task] of [["toy 10×256³", toy], ["ct 512×512×100", ct]] as const) {
  const clean = () => {
    for (const d of ["raw_cropped", "preprocessed"]) rmSync(join(task, d), { recursive: true, force: true });
  };
  const name = task.split("/").pop()!;
  const env = { det_data: dir, det_num_threads: String(N), det_verbose: "0" };
  clean();
  const ours = timed(["bun", "run", "src/main.ts", "prep", name, "--no_check", "-np", String(N), "-npp", String(N)], env);
  clean();
  const ours1 = timed(["bun", "run", "src/main.ts", "prep", name, "--no_check", "-np", "1", "-npp", "1"], env);
  const refOut = join(dir, "ref-out");
  rmSync(refOut, { recursive: true, force: true });
  const ref = timed(["/usr/bin/python3", "scripts/bench/prep_ref.py", task, refOut, String(N)], { OMP_NUM_THREADS: "1" });
  rmSync(refOut, { recursive: true, force: true });
  log(ours.out.trim());
  rows.push(
    { case: `${label} (-np ${N})`, metric: "s", ours: ours.s, reference: ref.s, ratio: ref.s / ours.s },
    { case: `${label} (-np 1)`, metric: "s", ours: ours1.s, reference: ref.s, ratio: ref.s / ours1.s },
    { case: `${label} (-np ${N})`, metric: "cpu s", ours: ours.cpu, reference: ref.cpu, ratio: ref.cpu / ours.cpu },
    { case: `${label} (-np ${N})`, metric: "MiB", ours: ours.mib, reference: ref.mib, ratio: ref.mib / ours.mib },
  );
}
if (json) console.log(JSON.stringify(rows));
else {
  console.log(`\nprep benchmark, ${N} threads (ours: det_num_threads; reference: ${N} processes)`);
  console.log(`${"case".padEnd(28)} ${"metric".padEnd(6)} ${"ours".padStart(9)} ${"reference".padStart(10)} ${"ratio".padStart(7)}`);
  for (const r of rows) {
    console.log(`${r.case.padEnd(28)} ${r.metric.padEnd(6)} ${r.ours.toFixed(2).padStart(9)} ${r.reference.toFixed(2).padStart(10)} ${r.ratio.toFixed(2).padStart(7)}`);
  }
}
