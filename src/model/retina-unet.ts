// RetinaUNetV001 (nnDetection, spec §5.1-5.4) as explicit forward/backward call sequences over buffers
// allocated once for (plan, patch, batch). No autograd: backward is forward in reverse.
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
import { type GraphPlan, planGraph } from "./graph";

export type { GraphPlan };

export class RetinaUNet {
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

  constructor(plan: ArchPlan, patch: Vec3, batch: number, opts: { training?: boolean } = {}) {
    const training = opts.training ?? true;
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

  #b(name: string): Float32Array {
    const v = this.#buf.get(name);
    if (!v) throw new Error(`retina-unet: no buffer ${name}`);
    return v;
  }
  #p(name: string): Float32Array {
    return this.#P.get(name)!;
  }
  #d(name: string): Float32Array {
    return this.#G.get(name)!;
  }

  // --- layer helpers (value buffers named by tensor) ---
  #conv(c: ConvLayer, x: Float32Array, y: Float32Array, accumulate = false): void {
    const f = c.transposed ? convt3dFwd : conv3dFwd;
    f(accumulate ? c.pAcc : c.p, x, this.#p(`${c.name}.weight`), c.bias ? this.#p(`${c.name}.bias`) : null, y, this.#ws);
  }
  #convBwdWeight(c: ConvLayer, x: Float32Array, dy: Float32Array): void {
    const f = c.transposed ? convt3dBwdWeight : conv3dBwdWeight;
    f(c.pAcc, x, dy, this.#d(`${c.name}.weight`), c.bias ? this.#d(`${c.name}.bias`) : null, this.#ws);
  }
  #convBwdData(c: ConvLayer, dy: Float32Array, dx: Float32Array, accumulate: boolean): void {
    const f = c.transposed ? convt3dBwdData : conv3dBwdData;
    f(accumulate ? c.pAcc : c.p, dy, this.#p(`${c.name}.weight`), dx, this.#ws);
  }
  #norm(n: NormLayer, x: Float32Array, y: Float32Array): void {
    normFwd(n.geom, x, this.#p(`${n.name}.weight`), this.#p(`${n.name}.bias`), y, this.#b(`${n.stats}.mean`), this.#b(`${n.stats}.rstd`), n.pFwd);
  }
  /** dy in `dy`; dx written over x (in place). */
  #normBwd(n: NormLayer, xdx: Float32Array, dy: Float32Array): void {
    normBwd(
      n.geom, xdx, this.#p(`${n.name}.bias`), dy, this.#p(`${n.name}.weight`), this.#b(`${n.stats}.mean`), this.#b(`${n.stats}.rstd`),
      xdx, this.#d(`${n.name}.weight`), this.#d(`${n.name}.bias`), n.pBwd,
    );
  }

  forward(): void {
    const g = this.g;
    let inp = this.input;
    for (const st of g.encoder) {
      for (const u of st) {
        this.#conv(u.conv, inp, this.#b(u.x));
        this.#norm(u.norm, this.#b(u.x), this.#b(u.y));
        inp = this.#b(u.y);
      }
    }
    for (let l = g.levels.length - 1; l >= 0; l--) {
      const lv = g.levels[l]!;
      this.#conv(lv.lateral, this.#b(lv.encOut), this.#b(lv.x));
      if (l < g.levels.length - 1) this.#conv(g.levels[l + 1]!.up!, this.#b(g.levels[l + 1]!.x), this.#b(lv.x), true);
    }
    for (const lv of g.levels) if (lv.used) this.#conv(lv.out, this.#b(lv.x), this.#b(lv.p));
    for (const h of g.heads) {
      const P = this.#b(g.levels[h.level]!.p);
      this.#conv(h.c1, P, this.#b(h.x1));
      this.#norm(h.n1, this.#b(h.x1), this.#b(h.y1));
      this.#conv(h.c2, this.#b(h.y1), this.#b(h.x2));
      this.#norm(h.n2, this.#b(h.x2), this.#b(h.y2));
      // the regressor keeps its raw output for the scale's gradient; the classifier's goes through scratch
      const o = h.kind === "reg" ? this.#b(h.oKeep!) : this.#b(h.o).subarray(0, h.oSize);
      this.#conv(h.cOut, this.#b(h.y2), o);
      const out = h.kind === "cls" ? this.cls : this.reg;
      permuteFwd(h.perm, o, out, h.pPerm);
      if (h.kind === "reg") {
        // NOTE: the scale multiplies the permuted copy in place, image by image (rows of one level).
        const s = this.#p(h.scale!);
        for (let n = 0; n < g.batch; n++) {
          const seg = out.subarray(n * h.perm.yStride + h.perm.yOff, n * h.perm.yStride + h.perm.yOff + h.oSize / g.batch);
          scaleFwd(seg, s, seg);
        }
      }
    }
    this.#conv(g.seg, this.#b(g.levels[0]!.p), this.seg);
  }

  /** Gradients of all parameters (overwritten) for the upstream gradients in dcls, dreg, dseg. */
  backward(): void {
    const g = this.g;
    this.grads.fill(0);
    // heads: everything down to each trunk's first conv weight gradient
    for (let i = g.heads.length - 1; i >= 0; i--) {
      const h = g.heads[i]!;
      const o = this.#b(h.o).subarray(0, h.oSize);
      permuteBwd(h.perm, h.kind === "cls" ? this.dcls : this.dreg, o, h.pPerm);
      if (h.kind === "reg") scaleBwd(this.#b(h.oKeep!), o, this.#p(h.scale!), o, this.#d(h.scale!), { accScale: true });
      this.#convBwdWeight(h.cOut, this.#b(h.y2), o);
      this.#convBwdData(h.cOut, o, this.#b(h.y2), false);
      this.#normBwd(h.n2, this.#b(h.x2), this.#b(h.y2));
      this.#convBwdWeight(h.c2, this.#b(h.y1), this.#b(h.x2));
      this.#convBwdData(h.c2, this.#b(h.x2), this.#b(h.y1), false);
      this.#normBwd(h.n1, this.#b(h.x1), this.#b(h.y1));
      this.#convBwdWeight(h.c1, this.#b(g.levels[h.level]!.p), this.#b(h.x1));
    }
    this.#convBwdWeight(g.seg, this.#b(g.levels[0]!.p), this.dseg);
    // dP_l into P_l's buffer once every reader of P_l has taken its weight gradient
    const written = new Set<number>();
    const into = (l: number) => {
      const first = !written.has(l);
      written.add(l);
      return !first;
    };
    for (const h of g.heads) this.#convBwdData(h.c1, this.#b(h.x1), this.#b(g.levels[h.level]!.p), into(h.level));
    this.#convBwdData(g.seg, this.dseg, this.#b(g.levels[0]!.p), into(0));
    // decoder, shallow to deep: dx_l = out_l'(dP_l) + up_l'(dx_{l-1}), then the lateral conv
    for (let l = 0; l < g.levels.length; l++) {
      const lv = g.levels[l]!;
      const x = this.#b(lv.x);
      if (l > 0) this.#convBwdWeight(lv.up!, x, this.#b(g.levels[l - 1]!.x));
      if (lv.used) this.#convBwdWeight(lv.out, x, this.#b(lv.p));
      if (lv.used) this.#convBwdData(lv.out, this.#b(lv.p), x, false);
      if (l > 0) this.#convBwdData(lv.up!, this.#b(g.levels[l - 1]!.x), x, lv.used);
      this.#convBwdWeight(lv.lateral, this.#b(lv.encOut), x);
      this.#convBwdData(lv.lateral, x, this.#b(lv.encGrad), false);
    }
    // encoder, deep to shallow
    for (let s = g.encoder.length - 1; s >= 0; s--) {
      const [u0, u1] = g.encoder[s] as [EncUnit, EncUnit];
      this.#normBwd(u1.norm, this.#b(u1.x), this.#b(g.levels[s]!.encGrad));
      this.#convBwdWeight(u1.conv, this.#b(u0.y), this.#b(u1.x));
      this.#convBwdData(u1.conv, this.#b(u1.x), this.#b(u0.y), false);
      this.#normBwd(u0.norm, this.#b(u0.x), this.#b(u0.y));
      const inp = s === 0 ? this.input : this.#b(g.encoder[s - 1]![1]!.y);
      this.#convBwdWeight(u0.conv, inp, this.#b(u0.x));
      if (s > 0) this.#convBwdData(u0.conv, this.#b(u0.x), this.#b(g.levels[s - 1]!.encGrad), true);
    }
  }

  /** One SGD step on the flat buffers (torch.optim.SGD semantics; the decay mask from the param specs). */
  step(h: SgdHyper): void {
    sgdStep(h, this.params, this.grads, this.momentum, this.mask);
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
