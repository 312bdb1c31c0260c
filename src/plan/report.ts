// The human-readable plan report users look at before training: `preprocessed/plan.md` with the plan's
// key numbers per mode, and `preprocessed/analysis/<plan>/object_sizes.svg`, a histogram of GT object
// sizes per axis in preprocessed voxels (after resampling to the target spacing) against the anchor sizes.
import type { Fingerprint } from "../data/fingerprint";
import { scaledBoxSizes } from "./anchors";
import type { Plan } from "./types";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c"];

/** An SVG histogram of box sizes per axis (3 overlaid outlines), anchor sizes of the first level marked. */
export function sizeHistogramSvg(sizes: number[][], anchors: number[][], title: string): string {
  const W = 640;
  const H = 320;
  const m = { l: 50, r: 20, t: 30, b: 40 };
  const all = sizes.flat();
  const max = Math.max(1, ...all, ...anchors.flat());
  const bins = 30;
  const bw = max / bins;
  const counts = [0, 1, 2].map((ax) => {
    const c = new Array<number>(bins).fill(0);
    for (const s of sizes) c[Math.min(bins - 1, Math.floor(s[ax]! / bw))]!++;
    return c;
  });
  const cmax = Math.max(1, ...counts.flat());
  const x = (v: number) => m.l + (v / max) * (W - m.l - m.r);
  const y = (c: number) => H - m.b - (c / cmax) * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${title}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">object size (voxels at target spacing)</text>`,
    `<text x="14" y="${H / 2}" transform="rotate(-90 14 ${H / 2})" text-anchor="middle">objects</text>`,
  ];
  for (let t = 0; t <= 5; t++) {
    const v = (max * t) / 5;
    parts.push(`<text x="${x(v)}" y="${H - m.b + 14}" text-anchor="middle">${v.toFixed(0)}</text>`);
  }
  parts.push(`<text x="${m.l - 6}" y="${y(cmax) + 4}" text-anchor="end">${cmax}</text>`, `<text x="${m.l - 6}" y="${H - m.b}" text-anchor="end">0</text>`);
  counts.forEach((c, ax) => {
    let d = `M ${x(0)} ${y(0)}`;
    c.forEach((n, i) => (d += ` L ${x(i * bw)} ${y(n)} L ${x((i + 1) * bw)} ${y(n)}`));
    d += ` L ${x(max)} ${y(0)}`;
    parts.push(`<path d="${d}" fill="none" stroke="${COLORS[ax]}" stroke-width="1.5"/>`);
    for (const a of anchors[ax] ?? []) {
      parts.push(`<line x1="${x(a)}" y1="${m.t}" x2="${x(a)}" y2="${H - m.b}" stroke="${COLORS[ax]}" stroke-dasharray="4 3"/>`);
    }
    parts.push(`<text x="${W - m.r - 4}" y="${m.t + 14 * (ax + 1)}" text-anchor="end" fill="${COLORS[ax]}">axis ${ax}</text>`);
  });
  parts.push(`<text x="${W - m.r - 4}" y="${m.t + 56}" text-anchor="end" fill="#555">dashed: anchors of the first level</text>`, "</svg>");
  return parts.join("\n");
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const list = (x: readonly number[]) => x.map((v) => +v.toFixed(4)).join(" × ");

/** plan.md for all plans of a task. `svgs` maps plan id to its histogram path (relative to plan.md). */
export function planMarkdown(task: string, fp: Fingerprint, plans: Plan[], svgs: Record<string, string>): string {
  const l: string[] = [`# ${task}: plans`, ""];
  const nObj = fp.cases.reduce((a, c) => a + c.boxes.length, 0);
  l.push(
    `${fp.cases.length} training cases, ${nObj} objects; modalities ${Object.values(fp.modalities).join(", ")}; classes ${Object.values(fp.labels).join(", ")}.`,
    "",
  );
  for (const p of plans) {
    const a = p.architecture;
    l.push(
      `## ${p.data_identifier}`,
      "",
      "| | |",
      "|---|---|",
      `| target spacing (array order) | ${list(p.target_spacing)} |`,
      `| axis order (transpose_forward) | ${p.transpose_forward.join(", ")} |`,
      `| median shape (transposed) | ${list(p.median_shape_transposed)} |`,
      `| patch size | ${p.patch_size.join(" × ")} |`,
      `| batch size | ${p.batch_size} |`,
      `| poolings (strides) | ${a.strides.map((s) => `[${s.join(",")}]`).join(" ")} |`,
      `| conv kernels | ${a.conv_kernels.map((s) => `[${s.join(",")}]`).join(" ")} |`,
      `| detection levels | ${a.decoder_levels.join(", ")} |`,
      `| anchors width / height / depth | ${p.anchors.width.map((w, i) => `(${w}) / (${p.anchors.height[i]}) / (${p.anchors.depth[i]})`).join("; ")} |`,
      `| mean best anchor IoU | ${p.anchor_mean_iou.toFixed(3)} |`,
      `| normalisation | ${Object.entries(p.normalization_schemes).map(([k, s]) => `${p.modalities[k]}: ${s}${p.use_mask_for_norm[k] ? " (masked)" : ""}`).join(", ")} |`,
      `| memory per training step | ${gib(p.memory.estimated_bytes)} of ${gib(p.memory.budget_bytes)} (${p.memory.estimator}) |`,
      `| max objects per patch | ${p.num_instances_per_patch} |`,
      "",
    );
    if (p.trigger_lr1 !== undefined) l.push(`Low-resolution plan triggered: ${p.trigger_lr1 ? "yes" : "no"}.`, "");
    if (svgs[p.data_identifier]) l.push(`![object sizes](${svgs[p.data_identifier]})`, "");
  }
  return l.join("\n");
}

/** Histogram SVG of one plan. */
export function planSvg(fp: Fingerprint, p: Plan): string {
  const sizes = scaledBoxSizes(fp.cases, p.transpose_forward, p.target_spacing_transposed);
  return sizeHistogramSvg(sizes, [p.anchors.width[0]!, p.anchors.height[0]!, p.anchors.depth[0]!], `${p.data_identifier}: GT object sizes`);
}
