// The call sequences of one RetinaUNetV001 forward and backward pass over a GraphPlan, written once for every
// executor: the CPU model (retina-unet.ts, Float32Array buffers) and the device model (retina-unet-device.ts,
// bf16 NDHWC buffers in one device arena) implement `NetOps`; buffers are named as in graph.ts. No autograd:
// backward is forward in reverse (see retina-unet.ts for the memory scheme: one buffer per tensor holds its
// value, then its gradient).
import type { GraphPlan, HeadNode } from "./graph";
import type { ConvLayer, EncUnit, NormLayer } from "./retina-unet";

export interface NetOps {
  /** y (=|+=) conv(x) (+ bias) */
  conv(c: ConvLayer, x: string, y: string, accumulate: boolean): void;
  /** dW += (and db +=) for layer c from its input x and output gradient dy */
  convBwdWeight(c: ConvLayer, x: string, dy: string): void;
  /** dx (=|+=) conv'(dy) */
  convBwdData(c: ConvLayer, dy: string, dx: string, accumulate: boolean): void;
  /** y = act(norm(x)), saving the statistics */
  norm(n: NormLayer, x: string, y: string): void;
  /** dy in `dy`; dx written over x (in place); dgamma/dbeta accumulated */
  normBwd(n: NormLayer, xdx: string, dy: string): void;
  /** head output conv result `o` -> the permuted model output (cls or reg), times the level scale for reg */
  headOut(h: HeadNode, o: string): void;
  /** the model output's gradient -> `o`'s gradient (through the scale for reg, accumulating dscale) */
  headOutBwd(h: HeadNode, o: string): void;
  /** zero every parameter gradient */
  zeroGrads(): void;
}

/** The buffer the head's output conv writes: the regressor keeps its own, the classifier uses scratch. */
export function headOutBuffer(h: HeadNode): string {
  return h.kind === "reg" ? h.oKeep! : `${h.o}@${h.oSize}`;
}

export function runForward(g: GraphPlan, ops: NetOps): void {
  let inp = "input";
  for (const st of g.encoder) {
    for (const u of st) {
      ops.conv(u.conv, inp, u.x, false);
      ops.norm(u.norm, u.x, u.y);
      inp = u.y;
    }
  }
  for (let l = g.levels.length - 1; l >= 0; l--) {
    const lv = g.levels[l]!;
    ops.conv(lv.lateral, lv.encOut, lv.x, false);
    if (l < g.levels.length - 1) ops.conv(g.levels[l + 1]!.up!, g.levels[l + 1]!.x, lv.x, true);
  }
  for (const lv of g.levels) if (lv.used) ops.conv(lv.out, lv.x, lv.p, false);
  for (const h of g.heads) {
    const P = g.levels[h.level]!.p;
    ops.conv(h.c1, P, h.x1, false);
    ops.norm(h.n1, h.x1, h.y1);
    ops.conv(h.c2, h.y1, h.x2, false);
    ops.norm(h.n2, h.x2, h.y2);
    const o = headOutBuffer(h);
    ops.conv(h.cOut, h.y2, o, false);
    ops.headOut(h, o);
  }
  ops.conv(g.seg, g.levels[0]!.p, "out.seg", false);
}

/** Gradients of all parameters (overwritten) for the upstream gradients in dout.cls, dout.reg, dout.seg. */
export function runBackward(g: GraphPlan, ops: NetOps): void {
  ops.zeroGrads();
  // heads: everything down to each trunk's first conv weight gradient
  for (let i = g.heads.length - 1; i >= 0; i--) {
    const h = g.heads[i]!;
    const o = `${h.o}@${h.oSize}`;
    ops.headOutBwd(h, o);
    ops.convBwdWeight(h.cOut, h.y2, o);
    ops.convBwdData(h.cOut, o, h.y2, false);
    ops.normBwd(h.n2, h.x2, h.y2);
    ops.convBwdWeight(h.c2, h.y1, h.x2);
    ops.convBwdData(h.c2, h.x2, h.y1, false);
    ops.normBwd(h.n1, h.x1, h.y1);
    ops.convBwdWeight(h.c1, g.levels[h.level]!.p, h.x1);
  }
  ops.convBwdWeight(g.seg, g.levels[0]!.p, "dout.seg");
  // dP_l into P_l's buffer once every reader of P_l has taken its weight gradient
  const written = new Set<number>();
  const into = (l: number) => {
    const first = !written.has(l);
    written.add(l);
    return !first;
  };
  for (const h of g.heads) ops.convBwdData(h.c1, h.x1, g.levels[h.level]!.p, into(h.level));
  ops.convBwdData(g.seg, "dout.seg", g.levels[0]!.p, into(0));
  // decoder, shallow to deep: dx_l = out_l'(dP_l) + up_l'(dx_{l-1}), then the lateral conv
  for (let l = 0; l < g.levels.length; l++) {
    const lv = g.levels[l]!;
    if (l > 0) ops.convBwdWeight(lv.up!, lv.x, g.levels[l - 1]!.x);
    if (lv.used) ops.convBwdWeight(lv.out, lv.x, lv.p);
    if (lv.used) ops.convBwdData(lv.out, lv.p, lv.x, false);
    if (l > 0) ops.convBwdData(lv.up!, g.levels[l - 1]!.x, lv.x, lv.used);
    ops.convBwdWeight(lv.lateral, lv.encOut, lv.x);
    ops.convBwdData(lv.lateral, lv.x, lv.encGrad, false);
  }
  // encoder, deep to shallow
  for (let s = g.encoder.length - 1; s >= 0; s--) {
    const [u0, u1] = g.encoder[s] as [EncUnit, EncUnit];
    ops.normBwd(u1.norm, u1.x, g.levels[s]!.encGrad);
    ops.convBwdWeight(u1.conv, u0.y, u1.x);
    ops.convBwdData(u1.conv, u1.x, u0.y, false);
    ops.normBwd(u0.norm, u0.x, u0.y);
    const inp = s === 0 ? "input" : g.encoder[s - 1]![1]!.y;
    ops.convBwdWeight(u0.conv, inp, u0.x);
    if (s > 0) ops.convBwdData(u0.conv, u0.x, g.levels[s - 1]!.encGrad, true);
  }
}
