// Benchmark of the detection core against nnDetection's functions in PyTorch on this machine
// (scripts/bench/detect_ref.py, run by /usr/bin/python3 with the same thread count):
//   ATSS (atssMatchLevels: anchors computed on demand) on one 160³ patch with a 4-level, 27-anchor plan
//   (strides 4, 8, 16, 32: 1 974 375 anchors) and 1 / 5 / 20 GT boxes; per-patch post-processing and hard-negative sampling on that anchor set; NMS
//   (IoU 0.5) on 10^4 and 10^5 clustered boxes; WBC on 40 models x 100 boxes.
// Inputs are generated here (seeded) and written to a temp folder for the reference. Medians of REPEATS
// runs after one warm-up. "results" = positive anchors / kept boxes / clusters; a warning is printed if the
// reference's count differs.
//   usage: bun scripts/bench-detect.ts [--json] [--repeats N]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { anchorCounts } from "../src/model/anchors";
import {
  atssMatch, atssMatchLevels, cpuInfo, generateAnchors, hardNegativeSample, nms3d, postprocessDetections, wbc, type AnchorLevel,
} from "../src/native";

const args = process.argv.slice(2);
const asJson = args.includes("--json");
const ri = args.indexOf("--repeats");
const repeats = ri >= 0 ? Number(args[ri + 1]) : 5;

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function median(f: () => unknown): number {
  f();
  const t: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const a = performance.now();
    f();
    t.push((performance.now() - a) / 1000);
  }
  t.sort((x, y) => x - y);
  return t[Math.floor(t.length / 2)]!;
}

/** Boxes jittered around `objects` random objects in a cube of side `extent`. */
function clustered(n: number, objects: number, extent: number, seed: number) {
  const r = rng(seed);
  const obj = Array.from({ length: objects }, () => {
    const s = [8 + r() * 32, 8 + r() * 32, 8 + r() * 32];
    return { c: [r() * extent, r() * extent, r() * extent], s };
  });
  const boxes = new Float32Array(n * 6);
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const o = obj[Math.floor(r() * objects)]!;
    const c = o.c.map((v, a) => v + (r() - 0.5) * 0.3 * o.s[a]!);
    const s = o.s.map((v) => v * (0.8 + 0.4 * r()));
    boxes.set([c[0]! - s[0]! / 2, c[1]! - s[1]! / 2, c[0]! + s[0]! / 2, c[1]! + s[1]! / 2, c[2]! - s[2]! / 2, c[2]! + s[2]! / 2], 6 * i);
    scores[i] = r();
  }
  return { boxes, scores };
}

const dir = mkdtempSync(join(tmpdir(), "nndet-bench-detect-"));
const threads = cpuInfo().threads;
type Case = {
  name: string;
  kind: string;
  files: Record<string, string>;
  params: Record<string, unknown>;
  ours: number;
  count: number;
};
const cases: Case[] = [];
const write = (name: string, a: Float32Array | Int32Array) => {
  writeFileSync(join(dir, name), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return name;
};

try {
  // ATSS: plan-like anchors (sizes x level multiplier), 160³ patch.
  const levels: AnchorLevel[] = [1, 2, 4, 8].map((m) => ({
    widths: [4 * m, 8 * m, 16 * m],
    heights: [4 * m, 8 * m, 16 * m],
    depths: [3 * m, 6 * m, 12 * m],
    fmapSize: [160 / (4 * m), 160 / (4 * m), 160 / (4 * m)] as [number, number, number],
    stride: [4 * m, 4 * m, 4 * m] as [number, number, number],
  }));
  const anchors = generateAnchors(levels);
  const { perLevel, perLocation } = anchorCounts(levels);
  write("anchors.bin", anchors);
  for (const g of [1, 5, 20]) {
    const r = rng(g);
    const gt = new Float32Array(g * 6);
    for (let i = 0; i < g; i++) {
      const s = [6 + r() * 50, 6 + r() * 50, 6 + r() * 50];
      const c = s.map((v) => v / 2 + r() * (160 - v));
      gt.set([c[0]! - s[0]! / 2, c[1]! - s[1]! / 2, c[0]! + s[0]! / 2, c[1]! + s[1]! / 2, c[2]! - s[2]! / 2, c[2]! + s[2]! / 2], 6 * i);
    }
    const ours = median(() => atssMatchLevels(gt, levels));
    const count = atssMatchLevels(gt, levels).filter((m) => m >= 0).length;
    if (count !== atssMatch(gt, anchors, perLevel, perLocation).filter((m) => m >= 0).length)
      throw new Error("atssMatchLevels and atssMatch disagree");
    cases.push({
      count,
      name: `atss 160^3 ${anchors.length / 6} anchors, ${g} GT`, kind: "atss",
      files: { gt: write(`gt${g}.bin`, gt), anchors: "anchors.bin" }, params: { per_level: perLevel, per_loc: perLocation }, ours,
    });
  }
  {
    // Per-patch post-processing of the same patch: 1 class, sigmoid probabilities around the 0.01 prior.
    const a = anchors.length / 6;
    const r = rng(41);
    const deltas = new Float32Array(a * 6).map(() => (r() - 0.5) * 0.5);
    const probs = new Float32Array(a).map(() => 1 / (1 + Math.exp(-(-4.6 + 3 * (r() + r() + r() - 1.5)))));
    const run = () => postprocessDetections({ boxes: deltas, anchors, probs, numClasses: 1, imageShape: [160, 160, 160] });
    const ours = median(run);
    cases.push({
      count: run().scores.length,
      name: `postprocess 160^3 ${a} anchors, top 10000, NMS 0.6`, kind: "postprocess",
      files: { deltas: write("pd.bin", deltas), anchors: "anchors.bin", probs: write("pp.bin", probs) },
      params: { shape: [160, 160, 160] }, ours,
    });
    // Hard-negative sampling over a batch of 4 such patches (labels from ATSS-like sparse positives).
    const labels = new Int32Array(4 * a).map(() => (r() < 2e-4 ? 1 : r() < 0.001 ? -1 : 0));
    const logits = new Float32Array(4 * a).map(() => -4.6 + 3 * (r() - 0.5));
    const samp = () => hardNegativeSample(labels, logits, 1, { batch: 4, seed: 1 });
    const oursS = median(samp);
    const sres = samp();
    cases.push({
      count: sres.pos.length + sres.neg.length,
      name: `hard-negative sampler, batch 4 x ${a} anchors`, kind: "sampler",
      files: { labels: write("sl.bin", labels), logits: write("sg.bin", logits) }, params: { batch: 4 }, ours: oursS,
    });
  }
  for (const [n, objects, extent] of [[10_000, 50, 160], [100_000, 500, 400]] as const) {
    const { boxes, scores } = clustered(n, objects, extent, n);
    const ours = median(() => nms3d(boxes, scores, 0.5));
    cases.push({
      count: nms3d(boxes, scores, 0.5).length,
      name: `nms ${n} boxes (${objects} clusters), IoU 0.5`, kind: "nms",
      files: { boxes: write(`nb${n}.bin`, boxes), scores: write(`ns${n}.bin`, scores) },
      params: { thr: 0.5, full_matrix: n <= 10_000 }, ours,
    });
  }
  {
    const n = 4000;
    const { boxes, scores } = clustered(n, 30, 160, 77);
    const r = rng(78);
    const labels = new Int32Array(n).map(() => (r() < 0.8 ? 0 : 1));
    const weights = new Float32Array(n).map(() => 0.5 + 0.5 * r());
    const nExp = new Float32Array(n).fill(40);
    const ours = median(() => wbc(boxes, scores, labels, weights, nExp, 0.5, 0));
    cases.push({
      count: wbc(boxes, scores, labels, weights, nExp, 0.5, 0).scores.length,
      name: "wbc 40 models x 100 boxes, IoU 0.5", kind: "wbc",
      files: {
        boxes: write("wb.bin", boxes), scores: write("ws.bin", scores), labels: write("wl.bin", labels),
        weights: write("ww.bin", weights), n_exp: write("wn.bin", nExp),
      },
      params: { thr: 0.5 }, ours,
    });
  }
  writeFileSync(join(dir, "cases.json"), JSON.stringify(cases.map(({ ours: _o, count: _c, ...c }) => c)));
  const py = spawnSync("/usr/bin/python3", [join(import.meta.dir, "bench/detect_ref.py"), dir, String(threads), String(repeats)], {
    encoding: "utf8",
    maxBuffer: 1 << 24,
  });
  if (py.status !== 0) throw new Error(`reference failed: ${py.stderr}`);
  const ref = JSON.parse(py.stdout) as Record<string, { s: number; count: number }>;
  for (const c of cases)
    if (ref[c.name]!.count !== c.count)
      console.error(`warning: ${c.name}: ours gives ${c.count} results, the reference ${ref[c.name]!.count}`);
  const rows = cases.map((c) => {
    const reference = ref[c.name]!.s;
    return { case: c.name, metric: "s", ours: c.ours, reference, ratio: reference / c.ours };
  });
  if (asJson) console.log(JSON.stringify(rows));
  else {
    console.log(`detection core vs nnDetection's functions in PyTorch ${threads} thread(s), median of ${repeats}`);
    console.log(`${"case".padEnd(52)} ${"ours (ms)".padStart(10)} ${"torch (ms)".padStart(11)} ${"ratio".padStart(8)} ${"results".padStart(8)}`);
    rows.forEach((r, i) =>
      console.log(
        `${r.case.padEnd(52)} ${(r.ours * 1e3).toFixed(2).padStart(10)} ${(r.reference * 1e3).toFixed(2).padStart(11)} ` +
          `${r.ratio.toFixed(1).padStart(8)} ${String(cases[i]!.count).padStart(8)}`,
      ),
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
