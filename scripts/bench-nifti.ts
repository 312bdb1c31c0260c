// NIfTI read/write speed, ours vs nibabel (scripts/bench-nifti.py via Debian's /usr/bin/python3), same volume, same
// machine, same run: a 256^3 float32 volume (the toy example's noise + object: nnDetection's own test data) written
// as .nii.gz at gzip levels 6 and 1, and read back from the files each side wrote. Medians of --runs (default 3).
// Ours writes parallel gzip members on the det_num_threads worker pool (nibabel is single-threaded; the thread
// count is printed), with libdeflate; nibabel uses Python's zlib. ratio = reference / ours (> 1: ours faster).
//   usage: bun scripts/bench-nifti.ts [--runs N] [--size N] [--json]
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateCase } from "../src/data/example";
import { defaultGeometry, readNifti, type Shape3, writeNifti } from "../src/io/nifti";
import { detNumThreads } from "../src/config/env";

const argv = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : def;
};
const runs = opt("runs", 3);
const n = opt("size", 256);
const json = argv.includes("--json");

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const ts: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await fn();
    ts.push((performance.now() - t0) / 1000);
  }
  return median(ts);
}

const dir = mkdtempSync(join(tmpdir(), "nndet-bench-nifti-"));
try {
  const { image } = generateCase(0, n, 1, 0);
  const shape: Shape3 = [n, n, n];
  const raw = join(dir, "volume.f32");
  writeFileSync(raw, new Uint8Array(image.buffer));
  const ours: Record<string, number> = {};
  for (const level of [6, 1]) {
    ours[`write${level}`] = await time(() => writeNifti(join(dir, `ours${level}.nii.gz`), { data: image, shape, geometry: defaultGeometry() }, { level }));
  }
  const files = ["nibabel6", "nibabel1", "ours6", "ours1"].map((f) => join(dir, `${f}.nii.gz`));
  const py = Bun.spawnSync(["/usr/bin/python3", join(import.meta.dir, "bench-nifti.py"), raw, String(n), String(n), String(n), dir, String(runs), ...files]);
  if (py.exitCode !== 0) throw new Error(`bench-nifti.py failed: ${py.stderr.toString()}`);
  const ref = JSON.parse(py.stdout.toString()) as { write: Record<string, number>; read: Record<string, number> };
  for (const f of files) ours[f] = await time(() => readNifti(f));
  const rows: { case: string; metric: string; ours: number; reference: number; ratio: number }[] = [];
  const mib = (f: string) => (statSync(f).size / 2 ** 20).toFixed(1);
  for (const level of [6, 1]) {
    const o = ours[`write${level}`]!;
    const r = ref.write[String(level)]!;
    rows.push({ case: `write ${n}^3 f32 gzip ${level} (ours ${mib(files[3 - (level === 6 ? 1 : 0)]!)} MiB, nibabel ${mib(files[level === 6 ? 0 : 1]!)} MiB)`, metric: "s", ours: o, reference: r, ratio: r / o });
  }
  for (const f of files) {
    const name = f.split("/").pop()!.replace(".nii.gz", "");
    rows.push({ case: `read ${n}^3 f32 written by ${name.replace(/\d$/, "")} at gzip ${name.slice(-1)}`, metric: "s", ours: ours[f]!, reference: ref.read[f]!, ratio: ref.read[f]! / ours[f]! });
  }
  if (json) console.log(JSON.stringify(rows));
  else {
    console.log(`NIfTI IO, ${n}^3 float32, median of ${runs}; ours: ${detNumThreads().value} gzip worker threads, nibabel: 1 thread`);
    console.log(`${"case".padEnd(62)} ${"ours s".padStart(8)} ${"nibabel s".padStart(10)} ${"ratio".padStart(7)}`);
    for (const r of rows) console.log(`${r.case.padEnd(62)} ${r.ours.toFixed(3).padStart(8)} ${r.reference.toFixed(3).padStart(10)} ${r.ratio.toFixed(2).padStart(7)}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
