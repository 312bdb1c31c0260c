// The static graph of RetinaUNetV001 for (plan, patch, batch): layers with their conv/norm parameters, and
// the list of buffers (name, float32 count, offset in one arena). retina-unet.ts runs it; memory.ts sums it
// without running anything. Buffer names: "input", "enc.{s}.{j}.x|y" (conv output | norm+ReLU output),
// "*.mean|rstd" (norm statistics), "dec.{l}.x|p" (lateral+up sum | output conv), "head.{cls|reg}.{l}.x1|y1|x2|y2",
// "head.reg.{l}.o" (raw regressor output, kept for the scale gradient), "head.o" (shared scratch),
// "out.*" (model outputs), "dout.*" (their upstream gradients), "enc.{s}.grad" (gradient of a stage output
// with two consumers). Inference graphs share slots ("infer.*") between values that die inside a layer.
import {
  type ConvParams,
  conv3dWorkspaceBytes,
  conv3dWorkspaceBytesFwd,
  convParamsFor,
  convt3dWorkspaceBytes,
  convt3dWorkspaceBytesFwd,
} from "../native/ops/conv";
import { normParams, type NormGeom, type PermuteGeom, permuteParams } from "../native/ops/engine";
import { type ArchPlan, type ArchShapes, archShapes, type Vec3, vol } from "./arch";
import { type ParamSpec, paramSpecs } from "./params";
import type { ConvLayer, EncUnit, NormLayer } from "./retina-unet";

export interface LevelNode {
  x: string;
  p: string;
  encOut: string;
  encGrad: string;
  lateral: ConvLayer;
  out: ConvLayer;
  /** ConvTranspose3d from this level to level-1 (module decoder.up.P{l}); absent at level 0 */
  up?: ConvLayer;
  /** P_l is read by a head or the segmenter */
  used: boolean;
}

export interface HeadNode {
  kind: "cls" | "reg";
  /** the level l this trunk runs on */
  level: number;
  c1: ConvLayer;
  n1: NormLayer;
  c2: ConvLayer;
  n2: NormLayer;
  cOut: ConvLayer;
  x1: string;
  y1: string;
  x2: string;
  y2: string;
  o: string;
  oKeep?: string;
  oSize: number;
  perm: PermuteGeom;
  pPerm: Int32Array;
  scale?: string;
}

export interface BufferSlot {
  name: string;
  size: number;
  byteOffset: number;
  kind: "input" | "activation" | "stats" | "output" | "gradient" | "scratch";
}

export interface GraphPlan {
  arch: ArchPlan;
  shapes: ArchShapes;
  batch: number;
  specs: ParamSpec[];
  encoder: EncUnit[][];
  levels: LevelNode[];
  heads: HeadNode[];
  seg: ConvLayer;
  buffers: BufferSlot[];
  arenaBytes: number;
  workspaceBytes: number;
  training: boolean;
}

const ALIGN = 64;

export function planGraph(arch: ArchPlan, patch: Vec3, batch: number, training = true): GraphPlan {
  const sh = archShapes(arch, patch, batch);
  const N = batch;
  const buffers: BufferSlot[] = [];
  let bytes = 0;
  const buf = (name: string, size: number, kind: BufferSlot["kind"]) => {
    buffers.push({ name, size, byteOffset: bytes, kind });
    bytes += Math.ceil((size * 4) / ALIGN) * ALIGN;
    return name;
  };
  // NOTE: without a backward pass, values that die within their layer share one slot per role; such a
  // buffer is named "slot@size" (the first `size` floats of the slot), slots are laid out at the end.
  const shared = new Map<string, number>();
  const temp = (name: string, slot: string, size: number, kind: BufferSlot["kind"]) => {
    if (training) return buf(name, size, kind);
    shared.set(slot, Math.max(shared.get(slot) ?? 0, size));
    return `${slot}@${size}`;
  };
  let ws = 0;
  const convs: ConvLayer[] = [];
  const conv = (name: string, kind: "conv" | "convt", cin: number, cout: number, dhw: Vec3, kernel: Vec3, stride: Vec3, bias: boolean): ConvLayer => {
    const p = convParamsFor(kind, { n: N, cin, cout, dhw, kernel, stride, hasBias: bias });
    const c: ConvLayer = { name, transposed: kind === "convt", bias, p, pAcc: { ...p, accumulate: true } };
    // Inference runs forward only: it needs only the forward pass's workspace.
    const wsOf = kind === "convt"
      ? training ? convt3dWorkspaceBytes : convt3dWorkspaceBytesFwd
      : training ? conv3dWorkspaceBytes : conv3dWorkspaceBytesFwd;
    ws = Math.max(ws, wsOf(p));
    convs.push(c);
    return c;
  };
  const norm = (name: string, stats: string, c: number, dhw: Vec3, groups: number): NormLayer => {
    const geom: NormGeom = { n: N, c, d: dhw[0], h: dhw[1], w: dhw[2], groups, act: "relu" };
    buf(`${stats}.mean`, N * groups, "stats");
    buf(`${stats}.rstd`, N * groups, "stats");
    return { name, stats, geom, pFwd: normParams(geom), pBwd: normParams({ ...geom, accParams: true }) };
  };
  const one: Vec3 = [1, 1, 1];

  buf("input", N * arch.in_channels * vol(sh.patch), "input");
  const encoder: EncUnit[][] = [];
  let cin = arch.in_channels;
  for (let s = 0; s < sh.stages; s++) {
    const units: EncUnit[] = [];
    const inDims = s === 0 ? sh.dims[0]! : sh.dims[s - 1]!;
    for (let j = 0; j < 2; j++) {
      const pre = `encoder.stages.${s}.convs.0.${j}`;
      const stride: Vec3 = j === 0 && s > 0 ? arch.strides[s - 1]! : one;
      const c = conv(`${pre}.conv`, "conv", j === 0 ? cin : sh.enc[s]!, sh.enc[s]!, j === 0 ? inDims : sh.dims[s]!, arch.conv_kernels[s]!, stride, false);
      const size = N * sh.enc[s]! * vol(sh.dims[s]!);
      const x = temp(`enc.${s}.${j}.x`, "infer.x", size, "activation");
      const y = j === 0 ? temp(`enc.${s}.${j}.y`, "infer.y", size, "activation") : buf(`enc.${s}.${j}.y`, size, "activation");
      units.push({ conv: c, norm: norm(`${pre}.norm`, `enc.${s}.${j}`, sh.enc[s]!, sh.dims[s]!, sh.enc[s]!), x, y });
    }
    encoder.push(units);
    cin = sh.enc[s]!;
  }

  const used = (l: number) => l === 0 || arch.decoder_levels.includes(l);
  const levels: LevelNode[] = [];
  for (let l = 0; l < sh.stages; l++) {
    const d = sh.dims[l]!;
    const size = N * sh.dec[l]! * vol(d);
    const encOut = `enc.${l}.1.y`;
    // the deepest stage output has one consumer (the lateral conv): its gradient goes over its value
    const encGrad = !training ? "" : l === sh.stages - 1 ? encOut : buf(`enc.${l}.grad`, N * sh.enc[l]! * vol(d), "gradient");
    levels.push({
      x: buf(`dec.${l}.x`, size, "activation"),
      p: used(l) ? buf(`dec.${l}.p`, size, "activation") : "",
      encOut,
      encGrad,
      lateral: conv(`decoder.lateral.P${l}.0.conv`, "conv", sh.enc[l]!, sh.dec[l]!, d, one, one, true),
      out: conv(`decoder.out.P${l}.0.conv`, "conv", sh.dec[l]!, sh.dec[l]!, d, arch.conv_kernels[l]!, one, true),
      up: l > 0 ? conv(`decoder.up.P${l}.conv`, "convt", sh.dec[l]!, sh.dec[l - 1]!, d, arch.strides[l - 1]!, arch.strides[l - 1]!, true) : undefined,
      used: used(l),
    });
  }

  const H = arch.head_channels;
  const heads: HeadNode[] = [];
  let scratch = 0;
  const outSize = { cls: N * sh.anchorsTotal * sh.classes, reg: N * sh.anchorsTotal * 6 };
  for (const kind of ["cls", "reg"] as const) {
    const mod = kind === "cls" ? "head.classifier" : "head.regressor";
    const cout = sh.anchors * (kind === "cls" ? sh.classes : 6);
    arch.decoder_levels.forEach((l, i) => {
      const d = sh.dims[l]!;
      const S = vol(d);
      const t = `head.${kind}.${l}`;
      const k3: Vec3 = [3, 3, 3];
      const oSize = N * cout * S;
      scratch = Math.max(scratch, oSize);
      const perm: PermuteGeom = { n: N, c: cout, s: S, yStride: outSize[kind] / N, yOff: sh.anchorOffset[i]! * (cout / sh.anchors) };
      heads.push({
        kind, level: l,
        c1: conv(`${mod}.conv_internal.c_in.conv`, "conv", sh.dec[l]!, H, d, k3, one, false),
        n1: norm(`${mod}.conv_internal.c_in.norm`, `${t}.n1`, H, d, H / 16),
        c2: conv(`${mod}.conv_internal.c_internal0.conv`, "conv", H, H, d, k3, one, false),
        n2: norm(`${mod}.conv_internal.c_internal0.norm`, `${t}.n2`, H, d, H / 16),
        cOut: conv(`${mod}.conv_out.conv`, "conv", H, cout, d, k3, one, true),
        x1: temp(`${t}.x1`, "infer.x", N * H * S, "activation"),
        y1: temp(`${t}.y1`, "infer.y", N * H * S, "activation"),
        x2: temp(`${t}.x2`, "infer.x", N * H * S, "activation"),
        y2: temp(`${t}.y2`, "infer.y2", N * H * S, "activation"),
        o: "head.o",
        oKeep: kind === "reg" ? temp(`${t}.o`, "head.o", oSize, "activation") : undefined,
        oSize,
        perm,
        pPerm: permuteParams(perm),
        scale: kind === "reg" ? `head.regressor.scales.${i}.scale` : undefined,
      });
    });
  }
  buf("head.o", Math.max(scratch, shared.get("head.o") ?? 0), "scratch");
  shared.delete("head.o");
  for (const [slot, size] of shared) buf(slot, size, "activation");
  const seg = conv("segmenter.conv_out.conv", "conv", sh.dec[0]!, 2, sh.dims[0]!, one, one, true);
  buf("out.cls", outSize.cls, "output");
  buf("out.reg", outSize.reg, "output");
  buf("out.seg", N * 2 * vol(sh.dims[0]!), "output");
  if (training) {
    buf("dout.cls", outSize.cls, "gradient");
    buf("dout.reg", outSize.reg, "gradient");
    buf("dout.seg", N * 2 * vol(sh.dims[0]!), "gradient");
  }
  return {
    arch, shapes: sh, batch, specs: paramSpecs(arch, sh), encoder, levels, heads, seg, buffers, arenaBytes: bytes,
    workspaceBytes: ws, training,
  };
}

export type { ConvParams };

/** Every conv layer the graph runs (shared head convs once per level), in schedule order. */
export function convLayers(g: GraphPlan): ConvLayer[] {
  return [
    ...g.encoder.flat().map((u) => u.conv),
    ...g.levels.flatMap((l) => [l.lateral, ...(l.used ? [l.out] : []), ...(l.up ? [l.up] : [])]),
    ...g.heads.flatMap((h) => [h.c1, h.c2, h.cOut]),
    g.seg,
  ];
}

