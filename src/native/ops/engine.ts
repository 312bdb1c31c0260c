// Typed wrappers of the engine family (crates/nndet-core/src/ffi/engine.rs): group/instance norm with a fused
// activation, ReLU/LeakyReLU, add, learnable scale, the head permute, SGD and parameter averaging.
// Tensors are NCDHW float32; TypedArrays pass zero-copy. In-place: pass the same array twice where noted.
import { check } from "../errors";
import { native } from "../lib";

/** Activation codes (ops/engine.rs act_of). */
export const Act = { none: 0, relu: 1, leaky: 2 } as const;
export type ActName = keyof typeof Act;

export interface NormGeom {
  n: number;
  c: number;
  d: number;
  h: number;
  w: number;
  /** c for InstanceNorm, c/16 for nnDetection's GroupNorm */
  groups: number;
  act: ActName;
  /** backward: add into dx instead of overwriting */
  accDx?: boolean;
  /** backward: add into dgamma/dbeta instead of overwriting */
  accParams?: boolean;
  eps?: number;
  slope?: number;
}

/** Layout of ops/engine.rs NormParams (9 x i32). */
export const NORM_PARAMS_FIELDS = ["n", "c", "d", "h", "w", "groups", "act", "acc_dx", "acc_dparam"] as const;

export function normParams(g: NormGeom): Int32Array {
  return Int32Array.from([g.n, g.c, g.d, g.h, g.w, g.groups, Act[g.act], g.accDx ? 1 : 0, g.accParams ? 1 : 0]);
}

/** y = act(norm(x)*gamma + beta); writes per-(n, group) mean and rstd for the backward. */
export function normFwd(
  g: NormGeom,
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  y: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  p: Int32Array = normParams(g),
): void {
  check(
    native().nd_norm_fwd(
      p, x, x.length, gamma, gamma.length, beta, beta.length, y, y.length, mean, mean.length, rstd, rstd.length,
      g.eps ?? 1e-5, g.slope ?? 0.01,
    ),
    "normFwd",
  );
}

/** Backward of normFwd from its input x (the activation mask is recomputed from x, gamma, beta and the
 *  saved statistics, so dy may live in the buffer that held y); dx === x runs in place (no accDx). */
export function normBwd(
  g: NormGeom,
  x: Float32Array,
  beta: Float32Array,
  dy: Float32Array,
  gamma: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  dx: Float32Array,
  dgamma: Float32Array,
  dbeta: Float32Array,
  p: Int32Array = normParams(g),
): void {
  check(
    native().nd_norm_bwd(
      p, x, x.length, beta, beta.length, dy, dy.length, gamma, gamma.length, mean, mean.length, rstd,
      rstd.length, dx, dx.length, dgamma, dgamma.length, dbeta, dbeta.length, g.slope ?? 0.01,
    ),
    "normBwd",
  );
}

/** y = act(x); x === y runs in place. */
export function actFwd(act: ActName, x: Float32Array, y: Float32Array, slope = 0.01): void {
  check(native().nd_act_fwd(Act[act], slope, x, x.length, y, y.length), "actFwd");
}

/** dx (+)= act'(y) * dy, from the activation's output y; dy === dx runs in place. */
export function actBwd(act: ActName, y: Float32Array, dy: Float32Array, dx: Float32Array, acc = false, slope = 0.01): void {
  check(native().nd_act_bwd(Act[act], slope, y, y.length, dy, dy.length, dx, dx.length, acc ? 1 : 0), "actBwd");
}

/** y = a + b; y may be a (or b). */
export function add(a: Float32Array, b: Float32Array, y: Float32Array): void {
  check(native().nd_add(a, a.length, b, b.length, y, y.length), "add");
}

/** y = x * scale[0]; x === y runs in place. */
export function scaleFwd(x: Float32Array, scale: Float32Array, y: Float32Array): void {
  check(native().nd_scale_fwd(x, x.length, scale, scale.length, y, y.length), "scaleFwd");
}

/** dx (+)= dy * scale[0]; dscale[0] (+)= sum(dy * x). dy === dx runs in place. */
export function scaleBwd(
  x: Float32Array,
  dy: Float32Array,
  scale: Float32Array,
  dx: Float32Array,
  dscale: Float32Array,
  opts: { accDx?: boolean; accScale?: boolean } = {},
): void {
  check(
    native().nd_scale_bwd(
      x, x.length, dy, dy.length, scale, scale.length, dx, dx.length, dscale, dscale.length,
      opts.accDx ? 1 : 0, opts.accScale ? 1 : 0,
    ),
    "scaleBwd",
  );
}

export interface PermuteGeom {
  n: number;
  c: number;
  s: number;
  /** values per image in y */
  yStride: number;
  /** where this tensor's rows start inside each image's block of y */
  yOff: number;
  acc?: boolean;
}

/** Layout of ops/engine.rs PermuteParams (6 x i32). */
export function permuteParams(g: PermuteGeom): Int32Array {
  return Int32Array.from([g.n, g.c, g.s, g.yStride, g.yOff, g.acc ? 1 : 0]);
}

/** y[n*yStride + yOff + s*C + c] (+)= x[n][c][s] — torch's permute(0,2,3,4,1).reshape(N, -1, K). */
export function permuteFwd(g: PermuteGeom, x: Float32Array, y: Float32Array, p: Int32Array = permuteParams(g)): void {
  check(native().nd_permute_fwd(p, x, x.length, y, y.length), "permuteFwd");
}

/** dx[n][c][s] (+)= dy[n*yStride + yOff + s*C + c]. */
export function permuteBwd(g: PermuteGeom, dy: Float32Array, dx: Float32Array, p: Int32Array = permuteParams(g)): void {
  check(native().nd_permute_bwd(p, dy, dy.length, dx, dx.length), "permuteBwd");
}

export interface SgdHyper {
  lr: number;
  momentum: number;
  weightDecay: number;
  nesterov: boolean;
}

/** One torch.optim.SGD step in place; mask[i] = 1 where weight decay applies. */
export function sgdStep(
  h: SgdHyper,
  params: Float32Array,
  grads: Float32Array,
  momentum: Float32Array,
  mask: Uint8Array,
): void {
  check(
    native().nd_sgd_step(
      params, params.length, grads, grads.length, momentum, momentum.length, mask, mask.length,
      h.lr, h.momentum, h.weightDecay, h.nesterov ? 1 : 0,
    ),
    "sgdStep",
  );
}

/** avg = avg + (params - avg) / (nAveraged + 1); a copy when nAveraged = 0 (SWA). */
export function averageUpdate(avg: Float32Array, params: Float32Array, nAveraged: number): void {
  check(native().nd_average_update(avg, avg.length, params, params.length, nAveraged), "averageUpdate");
}
