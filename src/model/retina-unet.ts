// RetinaUNetV001 (nnDetection, spec §5.1-5.4) on the CPU: float32 buffers allocated once for (plan, patch,
// batch), driven by the call sequences of schedule.ts (shared with the device model). No autograd.
//
// Graph: encoder stages s = 0..S-1 of 2 x [Conv3d(no bias) -> InstanceNorm3d(affine) -> ReLU] (first conv of
// stage s >= 1 strided); UFPN decoder x_l = lateral_l(enc_l) + up_{l+1}(x_{l+1}) (1x1x1 conv, ConvTranspose3d
// kernel = stride), P_l = out_l(x_l); shared heads on P_l for l in decoder_levels: classifier and regressor
// trunks of 2 x [conv3 -> GroupNorm(C/16) -> ReLU], output conv3 (27*K | 27*6 channels, the regressor's
// times a learnable per-level scale), permuted to [N, anchors, K|6] in nnDetection's anchor order (level,
// then position with the last axis fastest, then the 27 anchors, then classes/deltas); segmenter 1x1x1 conv
// on P_0 -> 2 logits. Outputs: cls [N, A, K], reg [N, A, 6], seg [N, 2, D, H, W].
//
// Memory: every tensor has ONE buffer that first holds its value and, in backward, its gradient (the norm
// backward recomputes the activation mask from its input, so y's buffer can take dy). Extra gradient
// buffers only where a tensor has two consumers read after each other: encoder stage outputs (lateral conv
// and next stage). Buffers are listed in `plan.buffers`; src/model/memory.ts sums the same list.
import type { ConvParams } from "../native/ops/conv";
import { conv3dFwd, conv3dBwdData, conv3dBwdWeight, convt3dFwd, convt3dBwdData, convt3dBwdWeight } from "../native/ops/conv";
import { normBwd, normFwd, type NormGeom, permuteBwd, permuteFwd, scaleBwd, scaleFwd, sgdStep, type SgdHyper } from "../native/ops/engine";
import type { ArchPlan, Vec3 } from "./arch";
import { decayMask, paramCount, view } from "./params";
import { type GraphPlan, type HeadNode, planGraph } from "./graph";
import { type NetOps, runBackward, runForward } from "./schedule";

export type { GraphPlan };

export class RetinaUNet implements NetOps {
  readonly g: GraphPlan;
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly momentum: Float32Array;
  readonly mask: Uint8Array;
  /** input image [N, C, D, H, W]: write the batch here before forward() */
  readonly input: Float32Array;
  readonly cls: Float32Array;
  readonly reg: Float32Array;
  readonly seg: Float32Array;
  /** upstream gradients of the three outputs: write them before backward() */
  readonly dcls: Float32Array;
  readonly dreg: Float32Array;
  readonly dseg: Float32Array;
  readonly #buf: Map<string, Float32Array>;
  readonly #ws: Uint8Array;
  readonly #P: Map<string, Float32Array> = new Map();
  readonly #G: Map<string, Float32Array> = new Map();

  constructor(plan: ArchPlan, patch: Vec3, batch: number, opts: { training?: boolean; profile?: boolean } = {}) {
    const training = opts.training ?? true;
    this.#profile = opts.profile ?? Number(process.env.ND_DEBUG ?? 0) >= 2;
    this.g = planGraph(plan, patch, batch, training);
    const n = paramCount(this.g.specs);
    this.params = new Float32Array(n);
    this.grads = new Float32Array(training ? n : 0);
    this.momentum = new Float32Array(training ? n : 0);
    this.mask = training ? decayMask(this.g.specs) : new Uint8Array(0);
    for (const s of this.g.specs) {
      this.#P.set(s.name, view(this.params, s));
      if (training) this.#G.set(s.name, view(this.grads, s));
    }
    // one arena for every activation buffer, 64-byte aligned slots
    const arena = new ArrayBuffer(this.g.arenaBytes);
    this.#buf = new Map();
    for (const b of this.g.buffers) this.#buf.set(b.name, new Float32Array(arena, b.byteOffset, b.size));
    this.#ws = new Uint8Array(this.g.workspaceBytes);
    const B = (k: string) => this.#buf.get(k)!;
    this.input = B("input");
    this.cls = B("out.cls");
    this.reg = B("out.reg");
    this.seg = B("out.seg");
    this.dcls = training ? B("dout.cls") : new Float32Array(0);
    this.dreg = training ? B("dout.reg") : new Float32Array(0);
    this.dseg = training ? B("dout.seg") : new Float32Array(0);
  }

  /** A buffer by name; "slot@size" is the first `size` floats of buffer `slot` (shared slots, scratch). */
  #b(name: string): Float32Array {
    const v = this.#buf.get(name);
    if (v) return v;
    const at = name.indexOf("@");
    const base = at > 0 ? this.#buf.get(name.slice(0, at)) : undefined;
    if (!base) throw new Error(`retina-unet: no buffer ${name}`);
    const sub = base.subarray(0, Number(name.slice(at + 1)));
    this.#buf.set(name, sub);
    return sub;
  }
  #p(name: string): Float32Array {
    return this.#P.get(name)!;
  }
  #d(name: string): Float32Array {
    return this.#G.get(name)!;
  }

  // --- layer helpers (value buffers named by tensor) ---
  /** Seconds per op category since construction, when built with `profile` (else empty). */
  readonly timings = new Map<string, number>();
  readonly #profile: boolean;
  #time(cat: string, f: () => void): void {
    if (!this.#profile) return f();
    const t0 = performance.now();
    f();
    this.timings.set(cat, (this.timings.get(cat) ?? 0) + (performance.now() - t0) / 1000);
  }

  // --- NetOps over Float32Array buffers (schedule.ts calls these in order) ---
  conv(c: ConvLayer, x: string, y: string, accumulate: boolean): void {
    const f = c.transposed ? convt3dFwd : conv3dFwd;
    const b = c.bias ? this.#p(`${c.name}.bias`) : null;
    const [xb, yb] = [this.#b(x), this.#b(y)];
    this.#time("conv fwd", () => f(accumulate ? c.pAcc : c.p, xb, this.#p(`${c.name}.weight`), b, yb, this.#ws));
  }
  convBwdWeight(c: ConvLayer, x: string, dy: string): void {
    const f = c.transposed ? convt3dBwdWeight : conv3dBwdWeight;
    const db = c.bias ? this.#d(`${c.name}.bias`) : null;
    const [xb, dyb] = [this.#b(x), this.#b(dy)];
    this.#time("conv bwd-weight", () => f(c.pAcc, xb, dyb, this.#d(`${c.name}.weight`), db, this.#ws));
  }
  convBwdData(c: ConvLayer, dy: string, dx: string, accumulate: boolean): void {
    const f = c.transposed ? convt3dBwdData : conv3dBwdData;
    const [dyb, dxb] = [this.#b(dy), this.#b(dx)];
    this.#time("conv bwd-data", () => f(accumulate ? c.pAcc : c.p, dyb, this.#p(`${c.name}.weight`), dxb, this.#ws));
  }
  norm(n: NormLayer, x: string, y: string): void {
    const [w, b, m, r] = [this.#p(`${n.name}.weight`), this.#p(`${n.name}.bias`), this.#b(`${n.stats}.mean`), this.#b(`${n.stats}.rstd`)];
    const [xb, yb] = [this.#b(x), this.#b(y)];
    this.#time("norm+relu fwd", () => normFwd(n.geom, xb, w, b, yb, m, r, n.pFwd));
  }
  normBwd(n: NormLayer, xdx: string, dy: string): void {
    const [w, b, m, r] = [this.#p(`${n.name}.weight`), this.#p(`${n.name}.bias`), this.#b(`${n.stats}.mean`), this.#b(`${n.stats}.rstd`)];
    const [dw, db] = [this.#d(`${n.name}.weight`), this.#d(`${n.name}.bias`)];
    const [xb, dyb] = [this.#b(xdx), this.#b(dy)];
    this.#time("norm+relu bwd", () => normBwd(n.geom, xb, b, dyb, w, m, r, xb, dw, db, n.pBwd));
  }
  headOut(h: HeadNode, o: string): void {
    const ob = this.#b(o);
    const out = h.kind === "cls" ? this.cls : this.reg;
    this.#time("permute+scale", () => {
      permuteFwd(h.perm, ob, out, h.pPerm);
      if (h.kind !== "reg") return;
      // NOTE: the scale multiplies the permuted copy in place, image by image (rows of one level).
      const s = this.#p(h.scale!);
      for (let n = 0; n < this.g.batch; n++) {
        const seg = out.subarray(n * h.perm.yStride + h.perm.yOff, n * h.perm.yStride + h.perm.yOff + h.oSize / this.g.batch);
        scaleFwd(seg, s, seg);
      }
    });
  }
  headOutBwd(h: HeadNode, o: string): void {
    const ob = this.#b(o);
    this.#time("permute+scale", () => {
      permuteBwd(h.perm, h.kind === "cls" ? this.dcls : this.dreg, ob, h.pPerm);
      if (h.kind === "reg") scaleBwd(this.#b(h.oKeep!), ob, this.#p(h.scale!), ob, this.#d(h.scale!), { accScale: true });
    });
  }
  zeroGrads(): void {
    this.#time("zero grads", () => this.grads.fill(0));
  }

  forward(): void {
    runForward(this.g, this);
  }

  /** Gradients of all parameters (overwritten) for the upstream gradients in dcls, dreg, dseg. */
  backward(): void {
    runBackward(this.g, this);
  }

  /** One SGD step on the flat buffers (torch.optim.SGD semantics; the decay mask from the param specs). */
  step(h: SgdHyper): void {
    this.#time("sgd", () => sgdStep(h, this.params, this.grads, this.momentum, this.mask));
  }
}

// Graph records built by graph.ts.
export interface ConvLayer {
  name: string;
  transposed: boolean;
  bias: boolean;
  p: ConvParams;
  pAcc: ConvParams;
}
export interface NormLayer {
  /** parameter prefix (state_dict name) */
  name: string;
  /** buffer prefix of its saved statistics (per use: shared head norms have one per level) */
  stats: string;
  geom: NormGeom;
  pFwd: Int32Array;
  pBwd: Int32Array;
}
export interface EncUnit {
  conv: ConvLayer;
  norm: NormLayer;
  x: string;
  y: string;
}
