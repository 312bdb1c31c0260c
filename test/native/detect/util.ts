// Helpers of the detection parity tests: load a fixture of test/fixtures/parity (nnDetection's own outputs,
// see its README.md), flatten nested arrays (non-finite values are the strings "NaN", "Infinity",
// "-Infinity"), and compare with |a - b| <= atol + rtol*|ref|, naming the first element that fails.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export type Nested = number | string | null | Nested[];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function fixture(name: string): any {
  return JSON.parse(readFileSync(join(import.meta.dir, "../../fixtures/parity", name), "utf8"));
}

function num(v: Nested): number {
  if (typeof v === "number") return v;
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  throw new TypeError(`not a number: ${JSON.stringify(v)}`);
}

export function flat(v: Nested): number[] {
  const out: number[] = [];
  const walk = (x: Nested) => {
    if (Array.isArray(x)) x.forEach(walk);
    else out.push(num(x));
  };
  walk(v);
  return out;
}

export const f32 = (v: Nested) => new Float32Array(flat(v));
export const i32 = (v: Nested) => new Int32Array(flat(v));

/** Throws naming the first element outside |a - b| <= atol + rtol*|ref| (NaN matches NaN). */
export function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  if (got.length !== ref.length) throw new Error(`${what}: length ${got.length}, expected ${ref.length}`);
  for (let i = 0; i < ref.length; i++) {
    const a = got[i]!;
    const b = ref[i]!;
    if (Number.isNaN(b) && Number.isNaN(a)) continue;
    if (a === b) continue;
    if (!(Math.abs(a - b) <= atol + rtol * Math.abs(b)))
      throw new Error(`${what}: element ${i} is ${a}, expected ${b} (atol ${atol}, rtol ${rtol})`);
  }
}

/** Exact equality of integer sequences, naming the first difference. */
export function expectSame(got: ArrayLike<number>, ref: ArrayLike<number>, what: string): void {
  if (got.length !== ref.length)
    throw new Error(`${what}: length ${got.length}, expected ${ref.length}: got [${Array.from(got).slice(0, 20)}], expected [${Array.from(ref).slice(0, 20)}]`);
  for (let i = 0; i < ref.length; i++)
    if (got[i] !== ref[i]) throw new Error(`${what}: element ${i} is ${got[i]}, expected ${ref[i]}`);
}
