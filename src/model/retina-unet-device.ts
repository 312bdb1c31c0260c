// RetinaUNetV001 on a device backend ("cuda": the GPU; "emu": the CPU emulator of the same kernels): the
// schedule of schedule.ts over one device arena allocated once, so a training step (forward + backward +
// SGD) queues kernels on one stream with no allocation and no host round trip. The host only uploads the
// batch and the upstream gradients and, when asked, downloads outputs.
//
// Device layout (hidden behind this class): activations and their gradients bf16 NDHWC; the head outputs
// (cls/reg rows, as the CPU model's) and their gradients fp32; norm statistics fp32; parameters, gradients
// and momentum fp32 in the CPU model's flat layout (params.ts), plus bf16 packs of each conv weight (one
// for the forward, one for backward-data) refreshed after every SGD step. Mixed precision as PyTorch AMP:
// bf16 storage, fp32 accumulation, fp32 master weights.
import { DeviceBuffer, type DeviceKind, DeviceStream } from "../native/tensor";
import type { SgdHyper } from "../native/ops/engine";
import {
  type DevCtx,
  gpuConvBwdData,
  gpuConvBwdWeight,
  gpuConvFwd,
  gpuConvPack,
  gpuConvSizes,
  gpuFill,
  gpuNormBwd,
  gpuNormFwd,
  gpuNormWsBytes,
  gpuPermuteBwd,
  gpuPermuteFwd,
  gpuScaleBwd,
  gpuScaleFwd,
  gpuScaleWsBytes,
  gpuSgdStep,
  gpuToNcdhw,
  gpuToNdhwc,
} from "../native/ops/gpu";
import type { ArchPlan, Vec3 } from "./arch";
import { convLayers, type GraphPlan, type HeadNode, planGraph } from "./graph";
import { decayMask, paramCount, type ParamSpec } from "./params";
import type { ConvLayer, NormLayer } from "./retina-unet";
import { type NetOps, runBackward, runForward } from "./schedule";

const ALIGN = 256;
const FP32_BUFFERS = new Set(["out.cls", "out.reg", "dout.cls", "dout.reg"]);

export class DeviceRetinaUNet implements NetOps {
  readonly g: GraphPlan;
  readonly kind: DeviceKind;
  /** bytes of the one device allocation */
  readonly arenaBytes: number;
  readonly paramCount: number;
  readonly #arena: DeviceBuffer;
  readonly #stream: DeviceStream;
  readonly #ctx: DevCtx;
  readonly #at = new Map<string, bigint>();
  readonly #specs = new Map<string, ParamSpec>();
  readonly #packs = new Map<string, { fwd: bigint; bwd: bigint; layer: ConvLayer }>();
  #params = 0n;
  #grads = 0n;
  #momentum = 0n;
  #mask = 0n;
  #staging = 0n;
  #ws = 0n;
  #normWs = 0n;
  #scaleWs = 0n;
  #packed = false;

  constructor(plan: ArchPlan, patch: Vec3, batch: number, opts: { kind: DeviceKind; training?: boolean }) {
    const training = opts.training ?? true;
    this.kind = opts.kind;
    this.g = planGraph(plan, patch, batch, training);
    const P = paramCount(this.g.specs);
    this.paramCount = P;
    for (const s of this.g.specs) this.#specs.set(s.name, s);
    const convs = convLayers(this.g);
    // layout: [name, bytes] in order; offsets 256-byte aligned
    const slots: [string, number][] = [["params", 4 * P]];
    if (training) slots.push(["grads", 4 * P], ["momentum", 4 * P], ["mask", P]);
    let wgradWs = 0;
    for (const c of convs) {
      const kind = c.transposed ? "convt" : "conv";
      const sz = gpuConvSizes(kind, c.p);
      if (training) wgradWs = Math.max(wgradWs, sz.wgradWorkspace);
      const w = `${c.name}.weight`;
      if (!this.#packs.has(w)) {
        this.#packs.set(w, { fwd: 0n, bwd: 0n, layer: c });
        slots.push([`pack.fwd:${w}`, 2 * sz.packedLen], [`pack.bwd:${w}`, 2 * sz.packedLen]);
      }
    }
    let normWs = 0;
    for (const n of this.#normLayers()) normWs = Math.max(normWs, gpuNormWsBytes(n.pFwd), gpuNormWsBytes(n.pBwd));
    const inputVol = this.g.buffers.find((b) => b.name === "input")!.size;
    const segVol = this.g.buffers.find((b) => b.name === "out.seg")!.size;
    slots.push(["staging", 4 * Math.max(inputVol, segVol)], ["ws.conv", wgradWs], ["ws.norm", normWs], ["ws.scale", gpuScaleWsBytes()]);
    for (const b of this.g.buffers) {
      const elem = b.kind === "stats" || FP32_BUFFERS.has(b.name) ? 4 : 2;
      slots.push([`buf:${b.name}`, elem * b.size]);
    }
    const offsets = new Map<string, number>();
    let bytes = 0;
    for (const [name, size] of slots) {
      offsets.set(name, bytes);
      bytes += Math.ceil(Math.max(size, 1) / ALIGN) * ALIGN;
    }
    this.arenaBytes = bytes;
    this.#arena = new DeviceBuffer(bytes, this.kind);
    this.#stream = new DeviceStream(this.kind);
    this.#ctx = { kind: this.kind, stream: this.#stream.handle };
    const at = (k: string) => this.#arena.at(offsets.get(k)!);
    this.#params = at("params");
    if (training) {
      this.#grads = at("grads");
      this.#momentum = at("momentum");
      this.#mask = at("mask");
      this.#arena.upload(decayMask(this.g.specs), offsets.get("mask")!);
      gpuFill(this.#ctx, this.#momentum, P, 4);
    }
    this.#staging = at("staging");
    this.#ws = at("ws.conv");
    this.#normWs = at("ws.norm");
    this.#scaleWs = at("ws.scale");
    for (const [w, p] of this.#packs) {
      p.fwd = at(`pack.fwd:${w}`);
      p.bwd = at(`pack.bwd:${w}`);
    }
    for (const b of this.g.buffers) this.#at.set(b.name, at(`buf:${b.name}`));
  }

  #normLayers(): NormLayer[] {
    return [...this.g.encoder.flat().map((u) => u.norm), ...this.g.heads.flatMap((h) => [h.n1, h.n2])];
  }

  /** The device address of a buffer by name; "slot@size" is the start of `slot`. */
  #b(name: string): bigint {
    const at = name.indexOf("@");
    const v = this.#at.get(at > 0 ? name.slice(0, at) : name);
    if (v === undefined) throw new Error(`retina-unet-device: no buffer ${name}`);
    return v;
  }
  #off(s: ParamSpec | undefined, what: string): number {
    if (!s) throw new Error(`retina-unet-device: no parameter ${what}`);
    return 4 * s.offset;
  }
  #p(name: string): bigint {
    return this.#params + BigInt(this.#off(this.#specs.get(name), name));
  }
  #d(name: string): bigint {
    return this.#grads + BigInt(this.#off(this.#specs.get(name), name));
  }

  // --- host <-> device ---
  /** Upload all parameters (flat fp32, params.ts layout); the bf16 packs are refreshed before the next use. */
  setParams(p: Float32Array): void {
    if (p.length !== this.paramCount) throw new Error(`setParams: ${p.length} values, expected ${this.paramCount}`);
    this.#stream.sync();
    this.#arena.upload(p, Number(this.#params - this.#arena.handle));
    this.#packed = false;
  }
  getParams(): Float32Array {
    this.#stream.sync();
    return this.#arena.download(new Float32Array(this.paramCount), Number(this.#params - this.#arena.handle));
  }
  getGrads(): Float32Array {
    this.#stream.sync();
    return this.#arena.download(new Float32Array(this.paramCount), Number(this.#grads - this.#arena.handle));
  }
  #upload(dst: bigint, src: Float32Array): void {
    this.#stream.sync();
    this.#arena.upload(src, Number(dst - this.#arena.handle));
  }
  #download(src: bigint, dst: Float32Array): Float32Array {
    this.#stream.sync();
    return this.#arena.download(dst, Number(src - this.#arena.handle));
  }
  /** The batch [N, C, D, H, W] fp32 -> the device input (bf16 NDHWC). */
  setInput(x: Float32Array): void {
    const sh = this.g.shapes;
    const s = sh.patch[0] * sh.patch[1] * sh.patch[2];
    const c = this.g.arch.in_channels;
    if (x.length !== this.g.batch * c * s) throw new Error(`setInput: ${x.length} values, expected ${this.g.batch * c * s}`);
    this.#upload(this.#staging, x);
    gpuToNdhwc(this.#ctx, this.#staging, this.#b("input"), this.g.batch, c, s);
  }
  #segDims(): [number, number] {
    const d = this.g.shapes.dims[0]!;
    return [2, d[0] * d[1] * d[2]];
  }
  /** The three outputs as the CPU model has them: cls [N, A, K], reg [N, A, 6], seg [N, 2, D, H, W] fp32. */
  outputs(): { cls: Float32Array; reg: Float32Array; seg: Float32Array } {
    const size = (n: string) => this.g.buffers.find((b) => b.name === n)!.size;
    const cls = this.#download(this.#b("out.cls"), new Float32Array(size("out.cls")));
    const reg = this.#download(this.#b("out.reg"), new Float32Array(size("out.reg")));
    const [c, s] = this.#segDims();
    gpuToNcdhw(this.#ctx, this.#b("out.seg"), this.#staging, this.g.batch, c, s);
    const seg = this.#download(this.#staging, new Float32Array(this.g.batch * c * s));
    return { cls, reg, seg };
  }
  /** Upstream gradients of the three outputs (layouts as outputs()). */
  setOutputGrads(dcls: Float32Array, dreg: Float32Array, dseg: Float32Array): void {
    this.#upload(this.#b("dout.cls"), dcls);
    this.#upload(this.#b("dout.reg"), dreg);
    const [c, s] = this.#segDims();
    this.#upload(this.#staging, dseg);
    gpuToNdhwc(this.#ctx, this.#staging, this.#b("dout.seg"), this.g.batch, c, s);
  }
  /** Wait for the queued work; kernel errors surface here. */
  sync(): void {
    this.#stream.sync();
  }
  free(): void {
    this.#stream.sync();
    this.#stream.destroy();
    this.#arena.free();
  }

  #pack(): void {
    if (this.#packed) return;
    for (const [w, p] of this.#packs) {
      gpuConvPack(this.#ctx, p.layer.transposed ? "convt" : "conv", p.layer.p, this.#p(w), p.fwd, p.bwd);
    }
    this.#packed = true;
  }

  // --- NetOps on the device ---
  conv(c: ConvLayer, x: string, y: string, accumulate: boolean): void {
    const pk = this.#packs.get(`${c.name}.weight`)!;
    const bias = c.bias ? this.#p(`${c.name}.bias`) : 0n;
    gpuConvFwd(this.#ctx, c.transposed ? "convt" : "conv", accumulate ? c.pAcc : c.p, this.#b(x), pk.fwd, bias, this.#b(y));
  }
  convBwdWeight(c: ConvLayer, x: string, dy: string): void {
    const db = c.bias ? this.#d(`${c.name}.bias`) : 0n;
    gpuConvBwdWeight(this.#ctx, c.transposed ? "convt" : "conv", c.pAcc, this.#b(x), this.#b(dy), this.#d(`${c.name}.weight`), db, this.#ws);
  }
  convBwdData(c: ConvLayer, dy: string, dx: string, accumulate: boolean): void {
    const pk = this.#packs.get(`${c.name}.weight`)!;
    gpuConvBwdData(this.#ctx, c.transposed ? "convt" : "conv", accumulate ? c.pAcc : c.p, this.#b(dy), pk.bwd, this.#b(dx));
  }
  norm(n: NormLayer, x: string, y: string): void {
    gpuNormFwd(this.#ctx, n.pFwd, this.#b(x), this.#p(`${n.name}.weight`), this.#p(`${n.name}.bias`), this.#b(y),
      this.#b(`${n.stats}.mean`), this.#b(`${n.stats}.rstd`), this.#normWs);
  }
  normBwd(n: NormLayer, xdx: string, dy: string): void {
    gpuNormBwd(this.#ctx, n.pBwd, this.#b(xdx), this.#b(dy), this.#p(`${n.name}.weight`), this.#p(`${n.name}.bias`),
      this.#b(`${n.stats}.mean`), this.#b(`${n.stats}.rstd`), this.#b(xdx), this.#d(`${n.name}.weight`),
      this.#d(`${n.name}.bias`), this.#normWs);
  }
  headOut(h: HeadNode, o: string): void {
    const out = this.#b(h.kind === "cls" ? "out.cls" : "out.reg");
    gpuPermuteFwd(this.#ctx, h.pPerm, this.#b(o), out);
    if (h.kind !== "reg") return;
    // the scale multiplies this level's rows of each image in place (as the CPU model)
    const per = h.oSize / this.g.batch;
    for (let n = 0; n < this.g.batch; n++) {
      const rows = out + BigInt(4 * (n * h.perm.yStride + h.perm.yOff));
      gpuScaleFwd(this.#ctx, "f32", rows, this.#p(h.scale!), rows, per);
    }
  }
  headOutBwd(h: HeadNode, o: string): void {
    gpuPermuteBwd(this.#ctx, h.pPerm, this.#b(h.kind === "cls" ? "dout.cls" : "dout.reg"), this.#b(o));
    if (h.kind === "reg") {
      gpuScaleBwd(this.#ctx, this.#b(h.oKeep!), this.#b(o), this.#p(h.scale!), this.#b(o), this.#d(h.scale!), h.oSize, false, true, this.#scaleWs);
    }
  }
  zeroGrads(): void {
    gpuFill(this.#ctx, this.#grads, this.paramCount, 4);
  }

  forward(): void {
    this.#pack();
    runForward(this.g, this);
  }
  /** Gradients of all parameters (overwritten) for the upstream gradients set by setOutputGrads. */
  backward(): void {
    this.#pack();
    runBackward(this.g, this);
  }
  /** One SGD step on the device (torch.optim.SGD semantics, the params.ts decay mask). */
  step(h: SgdHyper): void {
    gpuSgdStep(this.#ctx, h, this.#params, this.#grads, this.#momentum, this.#mask, this.paramCount);
    this.#packed = false;
  }
}
