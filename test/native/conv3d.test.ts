// Conv3d and ConvTranspose3d across the FFI boundary: every op against PyTorch fixtures
// (test/fixtures/conv, written by scripts/fixtures/conv.py), accumulate = 1, the params layout
// (a wrong field is named in the error), and bad arguments (lengths, null pointers, workspace).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NativeError, Status } from "../../src/native/errors";
import { lastError, native } from "../../src/native/lib";
import {
  CONV_PARAM_FIELDS,
  type ConvParams,
  conv3dBwdData,
  conv3dBwdWeight,
  conv3dFwd,
  conv3dParams,
  conv3dWorkspaceBytes,
  conv3dWorkspaceBytesFwd,
  convOutShape,
  convParamsFor,
  convt3dBwdData,
  convt3dBwdWeight,
  convt3dFwd,
  convt3dWorkspaceBytes,
} from "../../src/native/ops/conv";

const dir = join(import.meta.dir, "..", "fixtures", "conv");
interface Case {
  name: string;
  kind: "conv" | "convt";
  params: ConvParams;
  arrays: Record<string, [number, number]>;
}
const index = JSON.parse(readFileSync(join(dir, "conv.json"), "utf8")) as { cases: Case[] };
const blob = readFileSync(join(dir, "conv.bin"));
const all = new Float32Array(blob.buffer, blob.byteOffset, blob.byteLength / 4);
const arr = (c: Case, k: string): Float32Array => {
  const [o, n] = c.arrays[k]!;
  return all.slice(o, o + n);
};

function expectClose(name: string, got: Float32Array, want: Float32Array, atol = 2e-4, rtol = 2e-4): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (!(Math.abs(g - w) <= atol + rtol * Math.abs(w))) {
      throw new Error(`${name}: element ${i} is ${g}, expected ${w} (|diff| ${Math.abs(g - w)})`);
    }
  }
}

const ops = {
  conv: { ws: conv3dWorkspaceBytes, fwd: conv3dFwd, bd: conv3dBwdData, bw: conv3dBwdWeight },
  convt: { ws: convt3dWorkspaceBytes, fwd: convt3dFwd, bd: convt3dBwdData, bw: convt3dBwdWeight },
};

describe("conv fixtures (PyTorch)", () => {
  for (const c of index.cases) {
    test(`${c.name}: fwd, bwd-data, bwd-weight, and accumulate`, () => {
      const o = ops[c.kind];
      for (const accumulate of [false, true]) {
        const p = { ...c.params, accumulate };
        const ws = new Uint8Array(o.ws(p));
        const base = accumulate ? 0.5 : 0;
        const plus = (a: Float32Array) => a.map((v) => v + base);
        const y = new Float32Array(c.arrays.y![1]).fill(accumulate ? 0.5 : 7);
        o.fwd(p, arr(c, "x"), arr(c, "w"), p.hasBias ? arr(c, "b") : null, y, ws);
        expectClose(`${c.name} y`, y, plus(arr(c, "y")));
        const dx = new Float32Array(c.arrays.dx![1]).fill(accumulate ? 0.5 : -3);
        o.bd(p, arr(c, "dy"), arr(c, "w"), dx, ws);
        expectClose(`${c.name} dx`, dx, plus(arr(c, "dx")));
        const dw = new Float32Array(c.arrays.dw![1]).fill(accumulate ? 0.5 : 9);
        const db = p.hasBias ? new Float32Array(p.cout).fill(accumulate ? 0.5 : 9) : null;
        o.bw(p, arr(c, "x"), arr(c, "dy"), dw, db, ws);
        expectClose(`${c.name} dw`, dw, plus(arr(c, "dw")), 1e-3, 1e-4);
        if (db) expectClose(`${c.name} db`, db, plus(arr(c, "db")), 1e-3, 1e-4);
      }
    });
  }
});

describe("conv params", () => {
  const good = convParamsFor("conv", { n: 1, cin: 2, cout: 3, dhw: [5, 6, 7], kernel: [3, 3, 3], stride: [1, 2, 2] });
  test("convOutShape and convParamsFor", () => {
    expect(convOutShape("conv", [5, 6, 7], [3, 3, 3], [1, 2, 2])).toEqual([5, 3, 4]);
    expect(convOutShape("conv", [5, 6, 7], [1, 1, 1], [2, 2, 2])).toEqual([3, 3, 4]);
    expect(convOutShape("convt", [5, 6, 7], [1, 2, 2], [1, 2, 2])).toEqual([5, 12, 14]);
    expect([good.pd, good.ph, good.pw, good.od, good.oh, good.ow]).toEqual([1, 1, 1, 5, 3, 4]);
    expect(Array.from(conv3dParams(good))).toEqual([1, 2, 3, 5, 6, 7, 3, 3, 3, 1, 2, 2, 1, 1, 1, 5, 3, 4, 1, 0]);
  });

  test("a wrong value in each field is reported by its Rust name", () => {
    // One invalid value per field, in Int32Array order; the error must name that field.
    const bad: Record<(typeof CONV_PARAM_FIELDS)[number], number> = {
      n: 0, cin: -1, cout: 0, d: 0, h: 0, w: -2, kd: 5, kh: 2, kw: 4, sd: 3, sh: 0, sw: 4,
      pd: 0, ph: 2, pw: 3, od: 9, oh: 1, ow: 7, hasBias: 2, accumulate: 5,
    };
    CONV_PARAM_FIELDS.forEach((f, i) => {
      const a = conv3dParams(good);
      a[i] = bad[f];
      const out = new BigUint64Array(1);
      const st = native().nd_conv3d_workspace(a, a.length, out);
      expect(st).toBe(Status.InvalidArgument);
      const rust = f === "hasBias" ? "has_bias" : f;
      expect(lastError()).toMatch(new RegExp(`\\b${rust} must`));
    });
    const a = conv3dParams(good);
    const out = new BigUint64Array(1);
    expect(native().nd_conv3d_workspace(a, 19, out)).toBe(Status.InvalidArgument);
  });
});

describe("conv bad arguments", () => {
  const p = convParamsFor("conv", { n: 2, cin: 3, cout: 4, dhw: [4, 5, 6], kernel: [3, 3, 3], stride: [1, 1, 1] });
  const x = new Float32Array(2 * 3 * 120);
  const w = new Float32Array(4 * 3 * 27);
  const b = new Float32Array(4);
  const y = new Float32Array(2 * 4 * 120);
  const ws = new Uint8Array(conv3dWorkspaceBytes(p));
  const code = (f: () => void): [number, string] => {
    try {
      f();
    } catch (e) {
      return [(e as NativeError).code, (e as NativeError).detail];
    }
    return [0, ""];
  };

  test("wrong buffer lengths say expected vs got", () => {
    expect(code(() => conv3dFwd(p, x.subarray(1), w, b, y, ws))).toEqual([Status.BufferSize, "x has 719 elements, expected 720"]);
    expect(code(() => conv3dFwd(p, x, w, null, y, ws))[1]).toContain("bias has 0 elements, expected 4");
    expect(code(() => conv3dBwdData(p, y, w, x.subarray(0, 10), ws))[1]).toContain("dx has 10 elements, expected 720");
    expect(code(() => conv3dBwdWeight(p, x, y, w.subarray(1), b, ws))[1]).toContain("dw has 323 elements");
    expect(code(() => convt3dFwd({ ...p }, x, w, b, y, ws))[1]).toContain("kd must equal the stride");
  });

  test("null pointers and a short workspace are refused", () => {
    const a = conv3dParams(p);
    const st = native().nd_conv3d_fwd(a, a.length, null, x.length, w, w.length, b, b.length, y, y.length, ws, ws.byteLength);
    expect(st).toBe(Status.NullPointer);
    const big = convParamsFor("conv", { n: 1, cin: 16, cout: 16, dhw: [8, 8, 8], kernel: [3, 3, 3], stride: [2, 2, 2] });
    // Forward checks against its own (forward-only) workspace size; the backward ops against the full one.
    const need = conv3dWorkspaceBytesFwd(big);
    expect(need).toBeGreaterThan(0);
    expect(need).toBeLessThanOrEqual(conv3dWorkspaceBytes(big));
    {
      const [c, m] = code(() =>
        conv3dFwd(big, new Float32Array(16 * 512), new Float32Array(16 * 16 * 27), new Float32Array(16),
          new Float32Array(16 * 64), new Uint8Array(need - 1)),
      );
      expect(c).toBe(Status.BufferSize);
      expect(m).toContain("workspace");
    }
  });
});
