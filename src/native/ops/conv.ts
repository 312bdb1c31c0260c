// Typed wrappers of the conv family (crates/nndet-core/src/ffi/conv.rs): Conv3d and ConvTranspose3d,
// forward, backward-data, backward-weight, plus the peak-FMA probe of the conv benchmark.
//
// Layouts are PyTorch's, fp32, contiguous: activations [N][C][D][H][W]; Conv3d weights
// [Cout][Cin][kd][kh][kw]; ConvTranspose3d weights [Cin][Cout][kd][kh][kw]; bias [Cout]. `d,h,w` is the
// input's spatial size, `od,oh,ow` the output's. Conv3d: kernel 1 or 3 per axis with padding (k-1)/2,
// stride 1 or 2. ConvTranspose3d: kernel == stride (1 or 2) per axis, no padding. accumulate = true adds
// into the outputs (y, dx, dw, db) instead of overwriting them. `ws` is caller-owned scratch of at least
// conv3dWorkspaceBytes(p) bytes (any TypedArray); nothing is allocated per call.
import { check } from "../errors";
import { native } from "../lib";

export interface ConvParams {
  n: number;
  cin: number;
  cout: number;
  d: number;
  h: number;
  w: number;
  kd: number;
  kh: number;
  kw: number;
  sd: number;
  sh: number;
  sw: number;
  pd: number;
  ph: number;
  pw: number;
  od: number;
  oh: number;
  ow: number;
  hasBias: boolean;
  accumulate: boolean;
}

/** Field order of the Int32Array (mirror of crates/nndet-core/src/ops/conv.rs `Conv3dParams`). */
export const CONV_PARAM_FIELDS = [
  "n", "cin", "cout", "d", "h", "w", "kd", "kh", "kw", "sd", "sh", "sw", "pd", "ph", "pw", "od", "oh", "ow",
  "hasBias", "accumulate",
] as const;

/** The Int32Array(20) the native conv ops take. */
export function conv3dParams(p: ConvParams): Int32Array {
  const a = new Int32Array(CONV_PARAM_FIELDS.length);
  CONV_PARAM_FIELDS.forEach((k, i) => {
    const v = p[k];
    a[i] = typeof v === "boolean" ? (v ? 1 : 0) : v;
  });
  return a;
}

type Vec3 = readonly [number, number, number];

/** Output spatial size: conv o = floor((i + 2p - k)/s) + 1 with p = (k-1)/2; convT (k == s) o = i*s. */
export function convOutShape(kind: "conv" | "convt", dhw: Vec3, kernel: Vec3, stride: Vec3): [number, number, number] {
  return [0, 1, 2].map((a) =>
    kind === "convt"
      ? dhw[a]! * stride[a]!
      : Math.floor((dhw[a]! + 2 * Math.floor((kernel[a]! - 1) / 2) - kernel[a]!) / stride[a]!) + 1,
  ) as [number, number, number];
}

/** Full params from the few numbers a layer has (padding and output size derived). */
export function convParamsFor(
  kind: "conv" | "convt",
  o: { n: number; cin: number; cout: number; dhw: Vec3; kernel: Vec3; stride: Vec3; hasBias?: boolean; accumulate?: boolean },
): ConvParams {
  const [od, oh, ow] = convOutShape(kind, o.dhw, o.kernel, o.stride);
  const pad = (k: number) => (kind === "convt" ? 0 : Math.floor((k - 1) / 2));
  return {
    n: o.n, cin: o.cin, cout: o.cout, d: o.dhw[0], h: o.dhw[1], w: o.dhw[2],
    kd: o.kernel[0], kh: o.kernel[1], kw: o.kernel[2], sd: o.stride[0], sh: o.stride[1], sw: o.stride[2],
    pd: pad(o.kernel[0]), ph: pad(o.kernel[1]), pw: pad(o.kernel[2]), od, oh, ow,
    hasBias: o.hasBias ?? true, accumulate: o.accumulate ?? false,
  };
}

type Ws = Float32Array | Uint8Array;
type Kind = "conv3d" | "convt3d";

function wsBytes(kind: Kind, p: ConvParams, fwdOnly = false): number {
  const a = conv3dParams(p);
  const out = new BigUint64Array(1);
  const n = native();
  const f =
    kind === "conv3d"
      ? fwdOnly ? n.nd_conv3d_workspace_fwd : n.nd_conv3d_workspace
      : fwdOnly ? n.nd_convt3d_workspace_fwd : n.nd_convt3d_workspace;
  check(f(a, a.length, out), `${kind}WorkspaceBytes${fwdOnly ? "Fwd" : ""}`);
  return Number(out[0]);
}

function fwd(kind: Kind, p: ConvParams, x: Float32Array, w: Float32Array, b: Float32Array | null, y: Float32Array, ws: Ws): void {
  const a = conv3dParams(p);
  const f = kind === "conv3d" ? native().nd_conv3d_fwd : native().nd_convt3d_fwd;
  const bl = b ? b.length : 0;
  check(f(a, a.length, x, x.length, w, w.length, b, bl, y, y.length, ws, ws.byteLength), `${kind}Fwd`);
}

function bwdData(kind: Kind, p: ConvParams, dy: Float32Array, w: Float32Array, dx: Float32Array, ws: Ws): void {
  const a = conv3dParams(p);
  const f = kind === "conv3d" ? native().nd_conv3d_bwd_data : native().nd_convt3d_bwd_data;
  check(f(a, a.length, dy, dy.length, w, w.length, dx, dx.length, ws, ws.byteLength), `${kind}BwdData`);
}

function bwdWeight(
  kind: Kind, p: ConvParams, x: Float32Array, dy: Float32Array, dw: Float32Array, db: Float32Array | null, ws: Ws,
): void {
  const a = conv3dParams(p);
  const f = kind === "conv3d" ? native().nd_conv3d_bwd_weight : native().nd_convt3d_bwd_weight;
  const dbl = db ? db.length : 0;
  check(f(a, a.length, x, x.length, dy, dy.length, dw, dw.length, db, dbl, ws, ws.byteLength), `${kind}BwdWeight`);
}

/** Bytes of workspace conv3dFwd/BwdData/BwdWeight need for `p` (may be 0). */
export const conv3dWorkspaceBytes = (p: ConvParams): number => wsBytes("conv3d", p);
/** Workspace bytes conv3dFwd alone needs (inference); at most conv3dWorkspaceBytes. */
export const conv3dWorkspaceBytesFwd = (p: ConvParams): number => wsBytes("conv3d", p, true);
/** y (=|+=) conv3d(x, w) + bias. */
export const conv3dFwd = (p: ConvParams, x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, ws: Ws): void =>
  fwd("conv3d", p, x, w, bias, y, ws);
/** dx (=|+=) gradient of conv3d with respect to its input. */
export const conv3dBwdData = (p: ConvParams, dy: Float32Array, w: Float32Array, dx: Float32Array, ws: Ws): void =>
  bwdData("conv3d", p, dy, w, dx, ws);
/** dw, db (=|+=) gradients of conv3d with respect to weight and bias (db null when !hasBias). */
export const conv3dBwdWeight = (p: ConvParams, x: Float32Array, dy: Float32Array, dw: Float32Array, db: Float32Array | null, ws: Ws): void =>
  bwdWeight("conv3d", p, x, dy, dw, db, ws);

/** Bytes of workspace convt3dFwd/BwdData/BwdWeight need for `p` (may be 0). */
export const convt3dWorkspaceBytes = (p: ConvParams): number => wsBytes("convt3d", p);
/** Workspace bytes convt3dFwd alone needs (inference); at most convt3dWorkspaceBytes. */
export const convt3dWorkspaceBytesFwd = (p: ConvParams): number => wsBytes("convt3d", p, true);
/** y (=|+=) conv_transpose3d(x, w) + bias; w is [Cin][Cout][k]. */
export const convt3dFwd = (p: ConvParams, x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, ws: Ws): void =>
  fwd("convt3d", p, x, w, bias, y, ws);
/** dx (=|+=) gradient of conv_transpose3d with respect to its input. */
export const convt3dBwdData = (p: ConvParams, dy: Float32Array, w: Float32Array, dx: Float32Array, ws: Ws): void =>
  bwdData("convt3d", p, dy, w, dx, ws);
/** dw, db (=|+=) gradients of conv_transpose3d with respect to weight and bias. */
export const convt3dBwdWeight = (p: ConvParams, x: Float32Array, dy: Float32Array, dw: Float32Array, db: Float32Array | null, ws: Ws): void =>
  bwdWeight("convt3d", p, x, dy, dw, db, ws);

/** FLOPs of one conv/convT pass (fwd, bwd-data and bwd-weight each cost the same): 2*N*Cin*Cout*k*lo. */
export function convFlops(kind: "conv" | "convt", p: ConvParams): number {
  const lo = kind === "conv" ? p.od * p.oh * p.ow : p.d * p.h * p.w;
  return 2 * p.n * p.cin * p.cout * p.kd * p.kh * p.kw * lo;
}

/** Peak f32 FMA rate of this machine in GFLOP/s (a register-only FMA loop on every pool thread). */
export function benchPeakFma(seconds: number): number {
  const out = new Float64Array(1);
  check(native().nd_bench_peak_fma(seconds, out), "benchPeakFma");
  return out[0]!;
}
