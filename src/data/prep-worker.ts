// A Worker of `nndet prep` (prep-task.ts starts -np / -npp of them): runs one case's stage 1 (crop) or
// stage 4 (preprocess) per message and answers { id, ok, warnings } or { id, ok: false, error }. Each
// Worker loads the native library; its kernels share the process-wide thread pool.
import { cropCase, preprocessOne } from "./prep-case";

declare const self: Worker;

self.onmessage = async (ev: MessageEvent) => {
  const m = ev.data as { id: number; op: "ping" | "crop" | "pre"; args: unknown[] };
  try {
    let warnings: string[] = [];
    if (m.op === "crop") await (cropCase as (...a: unknown[]) => Promise<void>)(...m.args);
    else if (m.op === "pre") warnings = (preprocessOne as (...a: unknown[]) => string[])(...m.args);
    self.postMessage({ id: m.id, ok: true, warnings });
  } catch (e) {
    self.postMessage({ id: m.id, ok: false, error: (e as Error).message ?? String(e) });
  }
};
