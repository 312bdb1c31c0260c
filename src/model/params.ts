// The parameters of RetinaUNetV001 as one flat float32 buffer with named views, in nnDetection's state_dict
// order and names (encoder.stages.{s}.convs.0.{j}.conv/norm, decoder.lateral|out.P{l}.0.conv,
// decoder.up.P{l}.conv, head.classifier|regressor.conv_internal.{c_in,c_internal0}.conv/norm, .conv_out.conv,
// head.regressor.scales.{i}.scale, segmenter.conv_out.conv). Spec §5.1-5.4; mirrored by
// scripts/fixtures/engine_net.py `shapes`.
//
// Initialisation (`initParams`, seeded): PyTorch defaults for encoder/decoder/segmenter convs —
// kaiming_uniform(a=sqrt 5) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, where a
// ConvTranspose3d's fan_in is weight.size(1)*k = Cout*k (torch's quirk); norm weight 1, bias 0; head convs
// N(0, 0.01) with bias 0 and the classifier's output bias -log((1-0.01)/0.01); scales 1.
// Weight decay applies to everything but norm affine parameters (spec §6.2) and parameters that never get a
// gradient (decoder output convs of levels nothing reads: torch's SGD skips parameters whose grad is None).
import type { ArchPlan, ArchShapes } from "./arch";
import { readSafetensors, type Tensor, writeSafetensors } from "./safetensors";

export type ParamKind = "conv" | "convT" | "bias" | "biasT" | "norm_w" | "norm_b" | "head" | "head_bias" | "cls_bias" | "scale";

export interface ParamSpec {
  name: string;
  shape: number[];
  kind: ParamKind;
  /** first element in the flat buffer */
  offset: number;
  size: number;
  /** weight decay applies */
  decay: boolean;
}

export function paramSpecs(p: ArchPlan, sh: ArchShapes): ParamSpec[] {
  const out: ParamSpec[] = [];
  let off = 0;
  const used = (l: number) => l === 0 || p.decoder_levels.includes(l);
  const add = (name: string, shape: number[], kind: ParamKind, decay = true) => {
    const size = shape.reduce((a, b) => a * b, 1);
    out.push({ name, shape, kind, offset: off, size, decay: decay && kind !== "norm_w" && kind !== "norm_b" });
    off += size;
  };
  const { enc, dec } = sh;
  const K = sh.classes;
  const A = sh.anchors;
  const H = p.head_channels;
  let cin = p.in_channels;
  p.conv_kernels.forEach((k, s) => {
    for (let j = 0; j < 2; j++) {
      const pre = `encoder.stages.${s}.convs.0.${j}`;
      add(`${pre}.conv.weight`, [enc[s]!, j === 0 ? cin : enc[s]!, ...k], "conv");
      add(`${pre}.norm.weight`, [enc[s]!], "norm_w");
      add(`${pre}.norm.bias`, [enc[s]!], "norm_b");
    }
    cin = enc[s]!;
  });
  const L = sh.stages;
  for (let l = 0; l < L; l++) {
    add(`decoder.lateral.P${l}.0.conv.weight`, [dec[l]!, enc[l]!, 1, 1, 1], "conv");
    add(`decoder.lateral.P${l}.0.conv.bias`, [dec[l]!], "bias");
  }
  for (let l = 0; l < L; l++) {
    add(`decoder.out.P${l}.0.conv.weight`, [dec[l]!, dec[l]!, ...p.conv_kernels[l]!], "conv", used(l));
    add(`decoder.out.P${l}.0.conv.bias`, [dec[l]!], "bias", used(l));
  }
  for (let l = 1; l < L; l++) {
    add(`decoder.up.P${l}.conv.weight`, [dec[l]!, dec[l - 1]!, ...p.strides[l - 1]!], "convT");
    add(`decoder.up.P${l}.conv.bias`, [dec[l - 1]!], "biasT");
  }
  for (const [head, cout] of [["classifier", A * K], ["regressor", A * 6]] as const) {
    const pre = `head.${head}`;
    for (const nm of ["c_in", "c_internal0"]) {
      add(`${pre}.conv_internal.${nm}.conv.weight`, [H, nm === "c_in" ? dec[p.decoder_levels[0]!]! : H, 3, 3, 3], "head");
      add(`${pre}.conv_internal.${nm}.norm.weight`, [H], "norm_w");
      add(`${pre}.conv_internal.${nm}.norm.bias`, [H], "norm_b");
    }
    add(`${pre}.conv_out.conv.weight`, [cout, H, 3, 3, 3], "head");
    add(`${pre}.conv_out.conv.bias`, [cout], head === "classifier" ? "cls_bias" : "head_bias");
  }
  p.decoder_levels.forEach((_, i) => add(`head.regressor.scales.${i}.scale`, [], "scale"));
  add("segmenter.conv_out.conv.weight", [2, dec[0]!, 1, 1, 1], "conv");
  add("segmenter.conv_out.conv.bias", [2], "bias");
  return out;
}

export function paramCount(specs: ParamSpec[]): number {
  const last = specs[specs.length - 1]!;
  return last.offset + last.size;
}

/** A view of one parameter (or its gradient) inside a flat buffer. */
export function view(buf: Float32Array, s: ParamSpec): Float32Array {
  return buf.subarray(s.offset, s.offset + s.size);
}

/** Weight decay mask over the flat buffer (1 = decay). */
export function decayMask(specs: ParamSpec[]): Uint8Array {
  const m = new Uint8Array(paramCount(specs));
  for (const s of specs) if (s.decay) m.fill(1, s.offset, s.offset + s.size);
  return m;
}

/** fan_in as torch computes it: weight.size(1) * receptive field (for ConvTranspose that is Cout*k). */
function fanIn(shape: number[]): number {
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

/** Seeded PRNG (xoshiro128**) with uniform [0, 1) and standard normal (Box-Muller) draws. */
export class Rng {
  #s: Uint32Array;
  #spare: number | null = null;
  constructor(seed: number) {
    let x = seed >>> 0 || 0x9e3779b9;
    this.#s = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.#s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  nextU32(): number {
    const s = this.#s;
    const r = Math.imul(((Math.imul(s[1]!, 5) << 7) | (Math.imul(s[1]!, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = ((s[3]! << 11) | (s[3]! >>> 21)) >>> 0;
    return r;
  }
  uniform(): number {
    return this.nextU32() / 4294967296;
  }
  normal(): number {
    if (this.#spare !== null) {
      const v = this.#spare;
      this.#spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

export const PRIOR_BIAS = -Math.log((1 - 0.01) / 0.01);

/** Fill `buf` with the spec's initialisation from a seeded RNG. */
export function initParams(specs: ParamSpec[], buf: Float32Array, seed: number): void {
  const rng = new Rng(seed);
  const bound = new Map<string, number>();
  for (const s of specs) {
    const v = view(buf, s);
    const owner = s.name.slice(0, s.name.lastIndexOf("."));
    switch (s.kind) {
      case "conv":
      case "convT": {
        const b = 1 / Math.sqrt(fanIn(s.shape));
        bound.set(owner, b);
        for (let i = 0; i < v.length; i++) v[i] = (2 * rng.uniform() - 1) * b;
        break;
      }
      case "bias":
      case "biasT": {
        const b = bound.get(owner)!;
        for (let i = 0; i < v.length; i++) v[i] = (2 * rng.uniform() - 1) * b;
        break;
      }
      case "head":
        for (let i = 0; i < v.length; i++) v[i] = 0.01 * rng.normal();
        break;
      case "head_bias":
      case "norm_b":
        v.fill(0);
        break;
      case "cls_bias":
        v.fill(PRIOR_BIAS);
        break;
      case "norm_w":
      case "scale":
        v.fill(1);
        break;
    }
  }
}

/** n values uniform in [-1, 1) from an integer hash (scripts/fixtures/engine_net.py `hashu`, exactly). */
export function hashUniform(n: number, seed: number): Float64Array {
  const out = new Float64Array(n);
  const s0 = (Math.imul(seed, 40503) + 12345) >>> 0;
  for (let i = 0; i < n; i++) {
    let x = (Math.imul(i, 0x9e3779b1) + s0) >>> 0;
    for (let r = 0; r < 2; r++) {
      x = (x ^ (x >>> 16)) >>> 0;
      x = Math.imul(x, 0x45d9f3b) >>> 0;
    }
    x = (x ^ (x >>> 16)) >>> 0;
    out[i] = (x / 4294967296) * 2 - 1;
  }
  return out;
}

/** The fixtures' deterministic parameters (engine_net.py build_params(init="hash")). */
export function hashParams(specs: ParamSpec[], buf: Float32Array): void {
  const bound = new Map<string, number>();
  specs.forEach((s, t) => {
    const u = hashUniform(s.size, 2000 + t);
    const v = view(buf, s);
    const owner = s.name.slice(0, s.name.lastIndexOf("."));
    if (s.kind === "conv" || s.kind === "convT" || s.kind === "head") {
      const b = 1 / Math.sqrt(fanIn(s.shape));
      bound.set(owner, b);
      for (let i = 0; i < v.length; i++) v[i] = u[i]! * b;
    } else if (s.kind === "bias" || s.kind === "biasT" || s.kind === "head_bias" || s.kind === "cls_bias") {
      const b = bound.get(owner)!;
      for (let i = 0; i < v.length; i++) v[i] = u[i]! * b;
    } else if (s.kind === "norm_w" || s.kind === "scale") {
      for (let i = 0; i < v.length; i++) v[i] = 1 + 0.1 * u[i]!;
    } else {
      for (let i = 0; i < v.length; i++) v[i] = 0.1 * u[i]!;
    }
  });
}

/** Save parameters as safetensors with their state_dict names. */
export function saveParams(path: string, specs: ParamSpec[], buf: Float32Array, metadata?: Record<string, string>): void {
  const m = new Map<string, Tensor>();
  for (const s of specs) m.set(s.name, { shape: s.shape, data: view(buf, s) });
  writeSafetensors(path, m, metadata);
}

/** Load parameters by name; every parameter must be present with its exact shape. */
export function loadParams(path: string, specs: ParamSpec[], buf: Float32Array): Record<string, string> {
  const f = readSafetensors(path);
  for (const s of specs) {
    const t = f.tensors.get(s.name);
    if (!t) throw new Error(`${path}: parameter ${s.name} is missing`);
    if (t.shape.join(",") !== s.shape.join(",")) {
      throw new Error(`${path}: ${s.name} has shape [${t.shape}], the model expects [${s.shape}]`);
    }
    view(buf, s).set(t.data);
  }
  return f.metadata;
}
