// GPU benchmark (issue 7): our device kernels against PyTorch + cuDNN on the same GPU in the same run.
// Conv3d / ConvTranspose3d forward, backward-data and backward-weight on every distinct layer shape of the
// Retina U-Net planned for the default `nndet example` task (scripts/bench/example-plan.json: patch and
// batch from the plan), ours (bf16 NDHWC, tensor cores) vs PyTorch bf16 channels_last_3d with
// cudnn.benchmark; and the whole training step (forward + backward + SGD) vs the same model in PyTorch with
// AMP (bf16 autocast), with peak device memory (ours: the one arena; PyTorch: max_memory_allocated).
// Reference: scripts/bench/gpu_ref.py (the device's python3 with torch). Medians after warm-up.
//   usage: bun scripts/bench-gpu.ts [--json] [--json-out FILE] [--reps N] [--plan FILE] [--kind cuda|emu]
//          [--no-ref] [--no-net]
// --kind emu --plan <tiny> runs the same code through the CPU emulator (a dry run of the script, not a
// measurement). With --json prints [{"case","metric","ours","reference","ratio"}] (ratio > 1: ours better).
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ArchPlan, Vec3 } from "../src/model/arch";
import { convLayers, planGraph } from "../src/model/graph";
import { initParams } from "../src/model/params";
import { DeviceRetinaUNet } from "../src/model/retina-unet-device";
import type { ConvParams } from "../src/native/ops/conv";
import { type DevCtx, gpuConvBwdData, gpuConvBwdWeight, gpuConvFwd, gpuConvPack, gpuConvSizes } from "../src/native/ops/gpu";
import { DeviceBuffer, type DeviceKind, DeviceStream } from "../src/native/tensor";

const arg = (k: string) => {
  const i = process.argv.indexOf(k);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const reps = Number(arg("--reps") ?? 10);
const kind = (arg("--kind") ?? "cuda") as DeviceKind;
const cfg = JSON.parse(readFileSync(arg("--plan") ?? join(import.meta.dir, "bench", "example-plan.json"), "utf8")) as {
  plan: ArchPlan;
  patch: Vec3;
  batch: number;
};

interface Shape {
  name: string;
  kind: "conv" | "convt";
  n: number;
  cin: number;
  cout: number;
  dhw: Vec3;
  kernel: Vec3;
  stride: Vec3;
  count: number;
  p: ConvParams;
}

/** Every distinct conv shape of the training graph, with how often the network runs it. */
function shapes(): Shape[] {
  const g = planGraph(cfg.plan, cfg.patch, cfg.batch, true);
  const seen = new Map<string, Shape>();
  for (const c of convLayers(g)) {
    const p = c.p;
    const s: Shape = {
      name: "", kind: c.transposed ? "convt" : "conv", n: p.n, cin: p.cin, cout: p.cout, dhw: [p.d, p.h, p.w],
      kernel: [p.kd, p.kh, p.kw], stride: [p.sd, p.sh, p.sw], count: 1, p: { ...p, accumulate: false, hasBias: false },
    };
    s.name = `${s.kind} ${s.cin}->${s.cout} @${s.dhw.join("x")} k${s.kernel.join("")} s${s.stride.join("")}`;
    const old = seen.get(s.name);
    if (old) old.count++;
    else seen.set(s.name, s);
  }
  return [...seen.values()];
}

function median(ts: number[]): number {
  const s = [...ts].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timeIt(f: () => void, sync: () => void, n: number): number {
  f();
  sync();
  const ts: number[] = [];
  for (let r = 0; r < n; r++) {
    const t0 = performance.now();
    f();
    sync();
    ts.push((performance.now() - t0) / 1000);
  }
  return median(ts);
}

function ourLayer(s: Shape, stream: DeviceStream): { fwd: number; bwdData: number; bwdWeight: number } {
  const d: DevCtx = { kind, stream: stream.handle };
  const p = s.p;
  const inVol = p.n * p.cin * p.d * p.h * p.w;
  const outVol = p.n * p.cout * p.od * p.oh * p.ow;
  const wLen = p.cin * p.cout * p.kd * p.kh * p.kw;
  const sz = gpuConvSizes(s.kind, p);
  const buf = new DeviceBuffer(2 * inVol + 2 * outVol + 8 * wLen + 4 * sz.packedLen + sz.wgradWorkspace + 6 * 256, kind);
  let off = 0;
  const take = (bytes: number) => {
    const a = buf.at(off);
    off += Math.ceil(bytes / 256) * 256;
    return a;
  };
  const [x, y, w, dw, wf, wb, ws] = [take(2 * inVol), take(2 * outVol), take(4 * wLen), take(4 * wLen), take(2 * sz.packedLen), take(2 * sz.packedLen), take(sz.wgradWorkspace)];
  buf.fill(0);
  const host = new Float32Array(wLen).map((_, i) => Math.sin(i) * 0.05);
  buf.upload(host, Number(w - buf.handle));
  gpuConvPack(d, s.kind, p, w, wf, wb);
  const sync = () => stream.sync();
  const pAcc = { ...p, accumulate: true };
  const r = {
    fwd: timeIt(() => gpuConvFwd(d, s.kind, p, x, wf, 0n, y), sync, reps),
    bwdData: timeIt(() => gpuConvBwdData(d, s.kind, p, y, wb, x), sync, reps),
    bwdWeight: timeIt(() => gpuConvBwdWeight(d, s.kind, pAcc, x, y, dw, 0n, ws), sync, reps),
  };
  buf.free();
  return r;
}

function ourNetwork(): { step: number; bytes: number } {
  const net = new DeviceRetinaUNet(cfg.plan, cfg.patch, cfg.batch, { kind });
  const params = new Float32Array(net.paramCount);
  initParams(net.g.specs, params, 1);
  net.setParams(params);
  const inp = new Float32Array(cfg.batch * cfg.plan.in_channels * cfg.patch[0] * cfg.patch[1] * cfg.patch[2]).map((_, i) => Math.sin(i * 0.37));
  net.setInput(inp);
  const size = (n: string) => net.g.buffers.find((b) => b.name === n)!.size;
  net.setOutputGrads(new Float32Array(size("dout.cls")).fill(1e-3), new Float32Array(size("dout.reg")).fill(1e-3), new Float32Array(size("dout.seg")).fill(1e-3));
  const h = { lr: 0.01, momentum: 0.9, weightDecay: 3e-5, nesterov: true };
  const step = () => {
    net.forward();
    net.backward();
    net.step(h);
  };
  const t = timeIt(step, () => net.sync(), Math.max(3, reps >> 1));
  const bytes = net.arenaBytes;
  net.free();
  return { step: t, bytes };
}

interface Ref {
  layers: { name: string; fwd_s: number; bwd_data_s: number; bwd_weight_s: number }[];
  step_s: number | null;
  peak_bytes: number | null;
  torch: string;
  cudnn: number | null;
  device_name: string;
}

function reference(list: Shape[], withNet: boolean): Ref | null {
  if (process.argv.includes("--no-ref")) return null;
  const layers = list.map((s) => ({ name: s.name, kind: s.kind, n: s.n, cin: s.cin, cout: s.cout, dhw: s.dhw, kernel: s.kernel, stride: s.stride }));
  const py = process.env.ND_TORCH_PYTHON ?? "python3";
  const r = spawnSync(py, [join(import.meta.dir, "bench", "gpu_ref.py"), JSON.stringify({ layers, plan: cfg.plan, patch: cfg.patch, batch: cfg.batch, reps, network: withNet, device: kind === "cuda" ? "cuda" : "cpu", dtype: kind === "cuda" ? "bfloat16" : "float32" })], { encoding: "utf8", maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`gpu_ref.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Ref;
}

async function main(): Promise<void> {
  const json = process.argv.includes("--json");
  const withNet = !process.argv.includes("--no-net");
  const list = shapes();
  const stream = new DeviceStream(kind);
  // a failing shape (a kernel error on a first GPU run) is reported and the rest still measured
  const ours = list.map((s) => {
    try {
      return { s, t: ourLayer(s, stream) };
    } catch (e) {
      console.error(`ours failed on ${s.name}: ${(e as Error).message}`);
      return { s, t: { fwd: NaN, bwdData: NaN, bwdWeight: NaN } };
    }
  });
  stream.destroy();
  let net: { step: number; bytes: number } | null = null;
  if (withNet) {
    try {
      net = ourNetwork();
    } catch (e) {
      console.error(`ours failed on the training step: ${(e as Error).message}`);
    }
  }
  const ref = reference(list, withNet);
  const rows: { case: string; metric: string; ours: number; reference: number; ratio: number }[] = [];
  const convRatios: number[] = [];
  for (const { s, t } of ours) {
    const rl = ref?.layers.find((l) => l.name === s.name);
    for (const [pass, mine, theirs] of [["fwd", t.fwd, rl?.fwd_s], ["bwd-data", t.bwdData, rl?.bwd_data_s], ["bwd-weight", t.bwdWeight, rl?.bwd_weight_s]] as const) {
      const ratio = theirs ? theirs / mine : NaN;
      if (theirs && Number.isFinite(ratio)) convRatios.push(ratio);
      rows.push({ case: `${s.name} x${s.count} ${pass}`, metric: "s", ours: mine, reference: theirs ?? NaN, ratio });
    }
  }
  if (net) {
    const st = ref?.step_s ?? NaN;
    const pk = ref?.peak_bytes ?? NaN;
    rows.push({ case: `RetinaUNet training step ${cfg.batch}x${cfg.plan.in_channels}x${cfg.patch.join("x")}`, metric: "s", ours: net.step, reference: st, ratio: st / net.step });
    rows.push({ case: "RetinaUNet training step peak device memory", metric: "MiB", ours: net.bytes / 2 ** 20, reference: pk / 2 ** 20, ratio: pk / net.bytes });
  }
  const jsonOut = arg("--json-out");
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(rows));
  if (json) {
    console.log(JSON.stringify(rows));
    return;
  }
  console.log(`${kind}${ref ? `, reference torch ${ref.torch} cuDNN ${ref.cudnn} on ${ref.device_name}` : ""}; median of ${reps} after warm-up`);
  console.log("case | metric | ours | pytorch | ratio (>1: ours better)");
  for (const r of rows) console.log(`${r.case} | ${r.metric} | ${r.ours.toPrecision(4)} | ${r.reference.toPrecision(4)} | ${r.ratio.toFixed(2)}`);
  if (convRatios.length) {
    console.log(`conv passes: median ratio ${median(convRatios).toFixed(2)}, lowest ${Math.min(...convRatios).toFixed(2)} (targets: median >= 1.0, none below 0.7)`);
  }
}

await main();
