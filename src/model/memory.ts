// Exact memory account of RetinaUNetV001 for (plan, patch, batch), from the static graph alone (graph.ts):
// nothing runs, nothing large is allocated. Training step = parameters + gradients + SGD momentum + decay
// mask + the activation arena (values, norm statistics, outputs, their upstream gradients, the extra
// gradient buffers of two-consumer tensors, head scratch) + the largest conv workspace. Inference = the
// parameters + the forward arena (no gradient buffers; values that die inside a layer share slots) +
// the largest forward-only conv workspace. The planner uses this to choose a patch size;
// scripts/memory-engine.ts checks it against measured peak RSS.
import type { ArchPlan, Vec3 } from "./arch";
import { type BufferSlot, planGraph } from "./graph";
import { paramCount } from "./params";

export interface MemoryAccount {
  mode: "train" | "infer";
  params: number;
  grads: number;
  momentum: number;
  mask: number;
  /** arena bytes by buffer kind (64-byte aligned slots) */
  arena: Record<BufferSlot["kind"], number>;
  arenaTotal: number;
  workspace: number;
  total: number;
}

const slot = (b: BufferSlot) => Math.ceil((b.size * 4) / 64) * 64;

export function memoryAccount(plan: ArchPlan, patch: Vec3, batch: number, mode: "train" | "infer" = "train"): MemoryAccount {
  const training = mode === "train";
  const g = planGraph(plan, patch, batch, training);
  const n = paramCount(g.specs);
  const arena: MemoryAccount["arena"] = { input: 0, activation: 0, stats: 0, output: 0, gradient: 0, scratch: 0 };
  for (const b of g.buffers) arena[b.kind] += slot(b);
  const params = 4 * n;
  const grads = training ? 4 * n : 0;
  const momentum = training ? 4 * n : 0;
  const mask = training ? n : 0;
  const total = params + grads + momentum + mask + g.arenaBytes + g.workspaceBytes;
  return { mode, params, grads, momentum, mask, arena, arenaTotal: g.arenaBytes, workspace: g.workspaceBytes, total };
}

export function formatAccount(a: MemoryAccount): string {
  const mib = (v: number) => `${(v / 2 ** 20).toFixed(1)} MiB`;
  const parts = Object.entries(a.arena).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${mib(v)}`).join(", ");
  return `${a.mode}: total ${mib(a.total)} = params ${mib(a.params)} + grads ${mib(a.grads)} + momentum ${mib(a.momentum)} + mask ${mib(a.mask)} + arena ${mib(a.arenaTotal)} (${parts}) + workspace ${mib(a.workspace)}`;
}
