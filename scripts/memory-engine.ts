// Checks src/model/memory.ts against reality: for a few plans, a child process builds RetinaUNetV001, runs one
// training step (forward, backward, SGD) and reports its peak RSS (VmHWM) minus its RSS just before building
// the model; the parent prints both figures and their ratio.
//   usage: bun scripts/memory-engine.ts [--json]
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { ArchPlan, Vec3 } from "../src/model/arch";
import { formatAccount, memoryAccount } from "../src/model/memory";

interface Case {
  name: string;
  plan: ArchPlan;
  patch: Vec3;
  batch: number;
}

const k3 = (n: number) => Array.from({ length: n }, () => [3, 3, 3] as Vec3);
const s2 = (n: number) => Array.from({ length: n }, () => [2, 2, 2] as Vec3);
export const CASES: Case[] = [
  {
    name: "tiny 2 pools, 8 ch, 32^3 x2",
    plan: { in_channels: 1, start_channels: 8, max_channels: 320, fpn_channels: 16, head_channels: 16, classifier_classes: 1, conv_kernels: k3(3), strides: s2(2), decoder_levels: [1, 2] },
    patch: [32, 32, 32],
    batch: 2,
  },
  {
    name: "small 3 pools, 16 ch, 48^3 x2",
    plan: { in_channels: 1, start_channels: 16, max_channels: 320, fpn_channels: 32, head_channels: 32, classifier_classes: 1, conv_kernels: k3(4), strides: s2(3), decoder_levels: [1, 2, 3] },
    patch: [48, 48, 48],
    batch: 2,
  },
  {
    name: "small 4 pools, 32 ch, 64x64x32 x1",
    plan: { in_channels: 1, start_channels: 32, max_channels: 320, fpn_channels: 64, head_channels: 64, classifier_classes: 2, conv_kernels: [[1, 3, 3], ...k3(4)], strides: [[1, 2, 2], ...s2(3)], decoder_levels: [2, 3, 4] },
    patch: [32, 64, 64],
    batch: 1,
  },
];

function status(key: string): number {
  const m = readFileSync("/proc/self/status", "utf8").match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function child(c: Case): Promise<void> {
  const { native } = await import("../src/native/lib");
  const { RetinaUNet } = await import("../src/model/retina-unet");
  const { initParams } = await import("../src/model/params");
  native();
  const step = (net: InstanceType<typeof RetinaUNet>) => {
    initParams(net.g.specs, net.params, 1);
    for (let i = 0; i < net.input.length; i++) net.input[i] = Math.sin(i);
    net.forward();
    net.dcls.fill(1e-3);
    net.dreg.fill(1e-3);
    net.dseg.fill(1e-3);
    net.backward();
    net.step({ lr: 0.01, momentum: 0.9, weightDecay: 3e-5, nesterov: true });
  };
  // warm-up on a tiny patch: starts the thread pool and faults in the kernels' code, which are not the model's
  step(new RetinaUNet(c.plan, c.plan.strides.reduce((p, s) => p.map((v, a) => v * s[a]!) as Vec3, [1, 1, 1] as Vec3), 1));
  Bun.gc(true);
  const base = status("VmRSS");
  step(new RetinaUNet(c.plan, c.patch, c.batch));
  console.log(JSON.stringify({ base, hwm: status("VmHWM"), measured: status("VmHWM") - base }));
}

async function main(): Promise<void> {
  const ci = process.argv.indexOf("--child");
  if (ci >= 0) return child(CASES[Number(process.argv[ci + 1])]!);
  const json = process.argv.includes("--json");
  const rows: { case: string; metric: string; ours: number; reference: number; ratio: number }[] = [];
  CASES.forEach((c, i) => {
    const acc = memoryAccount(c.plan, c.patch, c.batch, "train");
    const r = spawnSync(process.execPath, [import.meta.path, "--child", String(i)], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`child for ${c.name} failed: ${r.stderr}`);
    const m = JSON.parse(r.stdout.trim().split("\n").pop()!) as { measured: number };
    const mib = (v: number) => v / 2 ** 20;
    rows.push({ case: c.name, metric: "MiB (account vs measured peak)", ours: mib(acc.total), reference: mib(m.measured), ratio: acc.total / m.measured });
    if (!json) {
      console.log(`${c.name}\n  ${formatAccount(acc)}\n  measured peak RSS growth ${mib(m.measured).toFixed(1)} MiB; account/measured ${(acc.total / m.measured).toFixed(3)}`);
    }
  });
  if (json) console.log(JSON.stringify(rows));
}

if (import.meta.main) await main();
