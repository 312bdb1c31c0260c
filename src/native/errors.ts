// Status codes of the native core (mirror of crates/nndet-core/src/error.rs `Status`), NativeError, and
// check(): the one place where a native status becomes an exception.
import { lastError } from "./lib";

export const Status = {
  Ok: 0,
  InvalidArgument: 1,
  NullPointer: 2,
  BufferSize: 3,
  OutOfMemory: 4,
  NoCuda: 5,
  Cuda: 6,
  Panic: 7,
  Internal: 8,
} as const;

export type StatusName = keyof typeof Status;

export function statusName(code: number): string {
  for (const [k, v] of Object.entries(Status)) if (v === code) return k;
  return `Status(${code})`;
}

/** A native call failed: which op, the status code, and the core's message. */
export class NativeError extends Error {
  readonly op: string;
  readonly code: number;
  readonly detail: string;
  constructor(op: string, code: number, detail: string) {
    super(`${op}: ${detail || statusName(code)}`);
    this.name = "NativeError";
    this.op = op;
    this.code = code;
    this.detail = detail;
  }
  get status(): string {
    return statusName(this.code);
  }
}

/** Throw a NativeError for a non-zero status, with this thread's last error message. */
export function check(status: number, op: string): void {
  if (status !== Status.Ok) throw new NativeError(op, status, lastError());
}
