// Typed wrappers of the device kernels the network runs (crates/nndet-core/src/ffi/gpu.rs). Each call queues
// work on the context's stream and returns at once; argument errors throw here, kernel errors at the next
// sync. Device layouts: activations and their gradients bf16 NDHWC; parameters, gradients, statistics and
// the head outputs fp32. Addresses are bigint device addresses (DeviceBuffer.at(offset)); 0n = none.
import { check } from "../errors";
import { native } from "../lib";
import { BACKEND_CODE, type DeviceKind } from "../tensor";
import { type ConvParams, conv3dParams } from "./conv";
import type { SgdHyper } from "./engine";

/** Where queued work goes: a backend and one of its streams (0n: the default stream). */
export interface DevCtx {
  kind: DeviceKind;
  stream: bigint;
}

type ConvKind = "conv" | "convt";
const KIND = { conv: 0, convt: 1 } as const;
const be = (d: DevCtx) => BACKEND_CODE[d.kind];

/** The Int32Array form of a layer's params, cached per params object. */
const convArrays = new WeakMap<ConvParams, Int32Array>();
function convArray(p: ConvParams): Int32Array {
  let a = convArrays.get(p);
  if (!a) {
    a = conv3dParams(p);
    convArrays.set(p, a);
  }
  return a;
}

/** bf16 values of one packed weight copy, and the backward-weight workspace bytes, for a layer. */
export function gpuConvSizes(kind: ConvKind, p: ConvParams): { packedLen: number; wgradWorkspace: number } {
  const a = convArray(p);
  const s = new BigUint64Array(2);
  check(native().nd_gpu_conv_sizes(KIND[kind], a, a.length, s, s.length), "gpuConvSizes");
  return { packedLen: Number(s[0]), wgradWorkspace: Number(s[1]) };
}

export function gpuConvPack(d: DevCtx, kind: ConvKind, p: ConvParams, w: bigint, wFwd: bigint, wBwd: bigint): void {
  const a = convArray(p);
  check(native().nd_gpu_conv_pack(be(d), KIND[kind], a, a.length, w, wFwd, wBwd, d.stream), "gpuConvPack");
}

export function gpuConvFwd(d: DevCtx, kind: ConvKind, p: ConvParams, x: bigint, wFwd: bigint, bias: bigint, y: bigint): void {
  const a = convArray(p);
  check(native().nd_gpu_conv_fwd(be(d), KIND[kind], a, a.length, x, wFwd, bias, y, d.stream), "gpuConvFwd");
}

export function gpuConvBwdData(d: DevCtx, kind: ConvKind, p: ConvParams, dy: bigint, wBwd: bigint, dx: bigint): void {
  const a = convArray(p);
  check(native().nd_gpu_conv_bwd_data(be(d), KIND[kind], a, a.length, dy, wBwd, dx, d.stream), "gpuConvBwdData");
}

export function gpuConvBwdWeight(
  d: DevCtx, kind: ConvKind, p: ConvParams, x: bigint, dy: bigint, dw: bigint, db: bigint, ws: bigint,
): void {
  const a = convArray(p);
  check(native().nd_gpu_conv_bwd_weight(be(d), KIND[kind], a, a.length, x, dy, dw, db, ws, d.stream), "gpuConvBwdWeight");
}

/** Workspace bytes of the norm kernels for NormParams `p` (src/native/ops/engine.ts normParams). */
export function gpuNormWsBytes(p: Int32Array): number {
  const out = new BigUint64Array(1);
  check(native().nd_gpu_norm_ws_bytes(p, out), "gpuNormWsBytes");
  return Number(out[0]);
}

export function gpuNormFwd(
  d: DevCtx, p: Int32Array, x: bigint, gamma: bigint, beta: bigint, y: bigint, mean: bigint, rstd: bigint, ws: bigint,
  eps = 1e-5, slope = 0.01,
): void {
  check(native().nd_gpu_norm_fwd(be(d), p, x, gamma, beta, y, mean, rstd, ws, eps, slope, d.stream), "gpuNormFwd");
}

export function gpuNormBwd(
  d: DevCtx, p: Int32Array, x: bigint, dy: bigint, gamma: bigint, beta: bigint, mean: bigint, rstd: bigint, dx: bigint,
  dgamma: bigint, dbeta: bigint, ws: bigint, slope = 0.01,
): void {
  check(native().nd_gpu_norm_bwd(be(d), p, x, dy, gamma, beta, mean, rstd, dx, dgamma, dbeta, ws, slope, d.stream), "gpuNormBwd");
}

/** PermuteParams `p` (engine.ts permuteParams): bf16 [n][s][c] -> fp32 rows. */
export function gpuPermuteFwd(d: DevCtx, p: Int32Array, x: bigint, y: bigint): void {
  check(native().nd_gpu_permute_fwd(be(d), p, x, y, d.stream), "gpuPermuteFwd");
}

export function gpuPermuteBwd(d: DevCtx, p: Int32Array, dy: bigint, dx: bigint): void {
  check(native().nd_gpu_permute_bwd(be(d), p, dy, dx, d.stream), "gpuPermuteBwd");
}

/** y = x * scale over n values (fp32 or bf16); scale: the address of one fp32. */
export function gpuScaleFwd(d: DevCtx, elem: "f32" | "bf16", x: bigint, scale: bigint, y: bigint, n: number): void {
  check(native().nd_gpu_scale_fwd(be(d), elem === "f32" ? 0 : 1, x, scale, y, n, d.stream), "gpuScaleFwd");
}

export const gpuScaleWsBytes = (): number => Number(native().nd_gpu_scale_ws_bytes());

/** dx (+)= dy*scale and dscale (+)= sum(dy*x) over n bf16. */
export function gpuScaleBwd(
  d: DevCtx, x: bigint, dy: bigint, scale: bigint, dx: bigint, dscale: bigint, n: number, accDx: boolean, accScale: boolean,
  ws: bigint,
): void {
  check(native().nd_gpu_scale_bwd(be(d), x, dy, scale, dx, dscale, n, accDx ? 1 : 0, accScale ? 1 : 0, ws, d.stream), "gpuScaleBwd");
}

export function gpuSgdStep(d: DevCtx, h: SgdHyper, params: bigint, grads: bigint, momentum: bigint, mask: bigint, n: number): void {
  check(
    native().nd_gpu_sgd_step(be(d), params, grads, momentum, mask, n, h.lr, h.momentum, h.weightDecay, h.nesterov ? 1 : 0, d.stream),
    "gpuSgdStep",
  );
}

export function gpuAverageUpdate(d: DevCtx, avg: bigint, params: bigint, n: number, nAveraged: number): void {
  check(native().nd_gpu_average_update(be(d), avg, params, n, nAveraged, d.stream), "gpuAverageUpdate");
}

/** NCDHW fp32 -> NDHWC bf16 (n images, c channels, s positions). */
export function gpuToNdhwc(d: DevCtx, x: bigint, y: bigint, n: number, c: number, s: number): void {
  check(native().nd_gpu_to_ndhwc(be(d), x, y, n, c, s, d.stream), "gpuToNdhwc");
}

/** NDHWC bf16 -> NCDHW fp32. */
export function gpuToNcdhw(d: DevCtx, x: bigint, y: bigint, n: number, c: number, s: number): void {
  check(native().nd_gpu_to_ncdhw(be(d), x, y, n, c, s, d.stream), "gpuToNcdhw");
}

/** Fill n words of `word` bytes at p with `bits` (e.g. zero), queued on the stream. */
export function gpuFill(d: DevCtx, p: bigint, n: number, word: 1 | 2 | 4, bits = 0): void {
  check(native().nd_gpu_fill(be(d), p, n, word, bits, d.stream), "gpuFill");
}
