// Element-wise comparison |a - b| <= atol + rtol*|ref| naming the first failing element (engine tests).
import { expect } from "bun:test";

export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= atol + rtol * Math.abs(want[i]!))) {
      throw new Error(`${what}[${i}]: got ${got[i]}, reference ${want[i]} (|diff| ${d})`);
    }
  }
}
