// Conv3d benchmark: our CPU kernels (forward, backward-data, backward-weight) against PyTorch's (oneDNN),
// measured in the same run with the same thread count (scripts/bench/conv_ref.py, torch.set_num_threads,
// warm-up, medians; two alternating rounds, the better median of each side), plus the machine's peak FP32 FMA rate (nd_bench_peak_fma) and each kernel's share of it.
//   usage: bun scripts/bench-conv.ts [--json] [--reps N] [--only NAME_SUBSTRING]
// Threads: det_num_threads (default all cores) for both sides. With --json prints one JSON array
// [{"case","metric","ours","reference","ratio"}] (ratio > 1: ours is faster).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { cpuInfo } from "../src/native/ops/base";
import {
  benchPeakFma,
  conv3dBwdData,
  conv3dBwdWeight,
  conv3dFwd,
  conv3dWorkspaceBytes,
  convFlops,
  convParamsFor,
} from "../src/native/ops/conv";

type V3 = [number, number, number];
interface Case {
  name: string;
  n: number;
  cin: number;
  cout: number;
  dhw: V3;
  k: V3;
  s: V3;
}
const c3: V3 = [3, 3, 3];
const one: V3 = [1, 1, 1];
const CASES: Case[] = [
  { name: "2x1->32 64^3 k3 s1", n: 2, cin: 1, cout: 32, dhw: [64, 64, 64], k: c3, s: one },
  { name: "2x32->32 64^3 k3 s1", n: 2, cin: 32, cout: 32, dhw: [64, 64, 64], k: c3, s: one },
  { name: "2x32->64 64^3 k3 s2", n: 2, cin: 32, cout: 64, dhw: [64, 64, 64], k: c3, s: [2, 2, 2] },
  { name: "2x64->64 32^3 k3 s1", n: 2, cin: 64, cout: 64, dhw: [32, 32, 32], k: c3, s: one },
  { name: "2x128->128 16^3 k3 s1", n: 2, cin: 128, cout: 128, dhw: [16, 16, 16], k: c3, s: one },
  { name: "2x256->256 8^3 k3 s1", n: 2, cin: 256, cout: 256, dhw: [8, 8, 8], k: c3, s: one },
  { name: "2x32->32 32x64x64 k133 s1", n: 2, cin: 32, cout: 32, dhw: [32, 64, 64], k: [1, 3, 3], s: one },
  { name: "2x64->128 32^3 k1 s1", n: 2, cin: 64, cout: 128, dhw: [32, 32, 32], k: one, s: one },
];

const args = process.argv.slice(2);
const json = args.includes("--json");
const repsIdx = args.indexOf("--reps");
const reps = repsIdx >= 0 ? Number(args[repsIdx + 1]) : 5;
const onlyIdx = args.indexOf("--only");
const cases = onlyIdx >= 0 ? CASES.filter((c) => c.name.includes(args[onlyIdx + 1]!)) : CASES;
const log = (s: string) => (json ? process.stderr.write(s + "\n") : console.log(s));

function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    a[i] = (s / 4294967296) * 2 - 1;
  }
  return a;
}

function median(fn: () => void): number {
  fn();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    ts.push((performance.now() - t0) / 1000);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]!;
}

const threads = cpuInfo().threads;
// The best of several short probes (the machine may be shared), again after the cases; the larger is used.
const probe = () => Math.max(...Array.from({ length: 5 }, () => benchPeakFma(0.2)));
let peak = probe();

// Ours then PyTorch's, case by case, so both see the same machine load.
const ours: Record<string, { fwd: number; bwd_data: number; bwd_weight: number }> = {};
const ref: Record<string, { fwd: number; bwd_data: number; bwd_weight: number }> = {};
for (const c of cases) {
  const p = convParamsFor("conv", { n: c.n, cin: c.cin, cout: c.cout, dhw: c.dhw, kernel: c.k, stride: c.s });
  const x = rand(c.n * c.cin * c.dhw[0] * c.dhw[1] * c.dhw[2]);
  const w = rand(c.cout * c.cin * c.k[0] * c.k[1] * c.k[2]).map((v) => v * 0.1);
  const b = rand(c.cout);
  const y = new Float32Array(c.n * c.cout * p.od * p.oh * p.ow);
  const dy = rand(y.length);
  const dx = new Float32Array(x.length);
  const dw = new Float32Array(w.length);
  const db = new Float32Array(c.cout);
  const ws = new Uint8Array(conv3dWorkspaceBytes(p));
  // Two rounds, alternating ours and PyTorch's; the faster median of each side is kept (the machine may
  // be shared, and load that comes and goes should not decide the ratio).
  for (let round = 0; round < 2; round++) {
    const o = {
      fwd: median(() => conv3dFwd(p, x, w, b, y, ws)),
      bwd_data: median(() => conv3dBwdData(p, dy, w, dx, ws)),
      bwd_weight: median(() => conv3dBwdWeight(p, x, dy, dw, db, ws)),
    };
    const py = spawnSync(
      "/usr/bin/python3",
      [join(import.meta.dir, "bench", "conv_ref.py"), String(threads), String(reps), JSON.stringify([c])],
      { encoding: "utf8", maxBuffer: 1 << 20 },
    );
    if (py.status !== 0) throw new Error(`conv_ref.py failed: ${py.stderr}`);
    const r = (JSON.parse(py.stdout) as typeof ref)[c.name]!;
    const best = (a: typeof o | undefined, b: typeof o) =>
      a ? { fwd: Math.min(a.fwd, b.fwd), bwd_data: Math.min(a.bwd_data, b.bwd_data), bwd_weight: Math.min(a.bwd_weight, b.bwd_weight) } : b;
    ours[c.name] = best(ours[c.name], o);
    ref[c.name] = best(ref[c.name], r);
  }
}

peak = Math.max(peak, probe());
log(`threads ${threads}, level ${cpuInfo().level}, peak FP32 FMA ${peak.toFixed(1)} GFLOP/s, reps ${reps}`);

const rows: { case: string; metric: string; ours: number; reference: number; ratio: number }[] = [];
log(
  `${"case".padEnd(28)} ${"op".padEnd(10)} ${"ours GF/s".padStart(10)} ${"torch GF/s".padStart(10)} ${"ratio".padStart(6)} ` +
    `${"ours %pk".padStart(8)} ${"torch %pk".padStart(9)}`,
);
for (const c of cases) {
  const p = convParamsFor("conv", { n: c.n, cin: c.cin, cout: c.cout, dhw: c.dhw, kernel: c.k, stride: c.s });
  const flops = convFlops("conv", p);
  for (const op of ["fwd", "bwd_data", "bwd_weight"] as const) {
    const o = flops / ours[c.name]![op] / 1e9;
    const r = flops / ref[c.name]![op] / 1e9;
    rows.push({ case: `${c.name} ${op}`, metric: "GFLOP/s", ours: o, reference: r, ratio: o / r });
    log(
      `${c.name.padEnd(28)} ${op.padEnd(10)} ${o.toFixed(1).padStart(10)} ${r.toFixed(1).padStart(10)} ` +
        `${(o / r).toFixed(2).padStart(6)} ${((100 * o) / peak).toFixed(0).padStart(7)}% ${((100 * r) / peak).toFixed(0).padStart(8)}%`,
    );
  }
}
if (json) console.log(JSON.stringify(rows));
