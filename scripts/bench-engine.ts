// Whole-network benchmark: one RetinaUNetV001 training step (forward, backward, SGD) on a 2x1x64^3 patch with
// a small plan, ours against PyTorch (scripts/bench/engine_ref.py, same graph, same thread count, warm-up,
// medians), and the peak memory of each (VmHWM growth in a fresh process after a tiny warm-up step).
//   usage: bun scripts/bench-engine.ts [--json] [--reps N]
// With --json prints [{"case","metric","ours","reference","ratio"}] (ratio > 1: ours is better).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ArchPlan, Vec3 } from "../src/model/arch";

const k3 = (n: number) => Array.from({ length: n }, () => [3, 3, 3] as Vec3);
const s2 = (n: number) => Array.from({ length: n }, () => [2, 2, 2] as Vec3);
const CASE = {
  name: "RetinaUNet step 2x1x64^3, 3 pools, 16 ch, fpn/head 32, K=1",
  plan: {
    in_channels: 1, start_channels: 16, max_channels: 320, fpn_channels: 32, head_channels: 32, classifier_classes: 1,
    conv_kernels: k3(4), strides: s2(3), decoder_levels: [1, 2, 3], anchors_per_pos: 27,
  } as ArchPlan,
  patch: [64, 64, 64] as Vec3,
  batch: 2,
};

function status(key: string): number {
  const m = readFileSync("/proc/self/status", "utf8").match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function child(reps: number): Promise<void> {
  const { RetinaUNet } = await import("../src/model/retina-unet");
  const { initParams } = await import("../src/model/params");
  const h = { lr: 0.01, momentum: 0.9, weightDecay: 3e-5, nesterov: true };
  const make = (patch: Vec3, batch: number) => {
    const net = new RetinaUNet(CASE.plan, patch, batch);
    initParams(net.g.specs, net.params, 1);
    for (let i = 0; i < net.input.length; i++) net.input[i] = Math.sin(i * 0.37);
    return net;
  };
  const step = (net: InstanceType<typeof RetinaUNet>) => {
    net.forward();
    net.dcls.fill(1e-3);
    net.dreg.fill(1e-3);
    net.dseg.fill(1e-3);
    net.backward();
    net.step(h);
  };
  step(make([16, 16, 16], 1));
  Bun.gc(true);
  const base = status("VmRSS");
  const net = make(CASE.patch, CASE.batch);
  step(net);
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    step(net);
    ts.push((performance.now() - t0) / 1000);
  }
  ts.sort((a, b) => a - b);
  console.log(JSON.stringify({ step_s: ts[Math.floor(ts.length / 2)], peak_bytes: status("VmHWM") - base }));
}

async function main(): Promise<void> {
  const ri = process.argv.indexOf("--reps");
  const reps = ri >= 0 ? Number(process.argv[ri + 1]) : 3;
  if (process.argv.includes("--child")) return child(reps);
  const json = process.argv.includes("--json");
  const { cpuInfo } = await import("../src/native/ops/base");
  const threads = cpuInfo().threads;
  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: "utf8", env: { ...process.env, det_num_threads: String(threads) } });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as { step_s: number; peak_bytes: number };
  };
  const ours = run(process.execPath, [import.meta.path, "--child", "--reps", String(reps)]);
  const ref = run("/usr/bin/python3", [join(import.meta.dir, "bench", "engine_ref.py"), String(threads), String(reps), JSON.stringify(CASE)]);
  const mib = (b: number) => b / 2 ** 20;
  const rows = [
    { case: CASE.name, metric: "s", ours: ours.step_s, reference: ref.step_s, ratio: ref.step_s / ours.step_s },
    { case: CASE.name, metric: "MiB", ours: mib(ours.peak_bytes), reference: mib(ref.peak_bytes), ratio: ref.peak_bytes / ours.peak_bytes },
  ];
  if (json) {
    console.log(JSON.stringify(rows));
    return;
  }
  console.log(`threads ${threads}, median of ${reps} steps after a warm-up step`);
  console.log("case | metric | ours | pytorch | ratio (>1: ours better)");
  for (const r of rows) console.log(`${r.case} | ${r.metric} | ${r.ours.toFixed(3)} | ${r.reference.toFixed(3)} | ${r.ratio.toFixed(2)}`);
}

if (import.meta.main) await main();
