// src/model/memory.ts against measured peak RSS growth of one training step in a child process
// (scripts/memory-engine.ts --child), on the tiny plan, training and inference; and the account's arithmetic.
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { memoryAccount } from "../../src/model/memory";
import { CASES } from "../../scripts/memory-engine";

for (const mode of ["train", "infer"] as const) {
  test(`memory account is within 10% of the measured peak (${mode})`, () => {
    const c = CASES[0]!;
    const acc = memoryAccount(c.plan, c.patch, c.batch, mode);
    const script = join(import.meta.dir, "..", "..", "scripts", "memory-engine.ts");
    const r = spawnSync(process.execPath, [script, "--child", "0", mode], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const m = JSON.parse(r.stdout.trim().split("\n").pop()!) as { measured: number };
    // Inference sizes its workspace with the forward-only query, so both modes are held to 10%.
    expect(Math.abs(acc.total / m.measured - 1)).toBeLessThan(0.1);
  });
}

test("inference needs no gradients, momentum or gradient buffers", () => {
  const c = CASES[1]!;
  const tr = memoryAccount(c.plan, c.patch, c.batch, "train");
  const inf = memoryAccount(c.plan, c.patch, c.batch, "infer");
  expect(inf.grads + inf.momentum + inf.mask + inf.arena.gradient).toBe(0);
  expect(inf.params).toBe(tr.params);
  // values that die inside a layer share slots without a backward pass
  expect(inf.arena.activation).toBeLessThan(tr.arena.activation);
  expect(inf.total).toBe(inf.params + inf.arenaTotal + inf.workspace);
});
