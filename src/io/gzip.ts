// gzip for NIfTI files: Bun's native zlib/libdeflate, with large buffers compressed and decompressed in parallel.
//
// Writing: the buffer is cut into chunks of CHUNK bytes, each compressed on a small Worker pool into an independent
// gzip member (RFC 1952 allows any number of members; nibabel, ITK and `gzip -d` read the concatenation as one
// stream). Each member's header carries an FEXTRA subfield "ND" holding the member's total byte length (as BGZF's
// "BC" does), so our reader can find member boundaries without inflating and decompress members in parallel.
// Reading: files with that index are inflated member by member (in parallel when large); any other gzip file goes
// through Bun.gunzipSync, and through node:zlib when the stream has more than one member (Bun.gunzipSync stops after
// the first member).
// NOTE: a member carries its own CRC32 and length, which zlib checks on inflate; a truncated file fails there.
import { availableParallelism } from "node:os";
import zlib from "node:zlib";

/** Uncompressed bytes per member. 4 MiB: enough work per task to hide the Worker round trip. */
export const CHUNK = 4 << 20;
/** Below this size everything runs on the calling thread. */
const PARALLEL_MIN = 2 * CHUNK;

/**
 * Defaults: libdeflate at level 1 (nibabel's default level). On noisy float32 volumes it compresses better than zlib
 * at level 6 and 2-3x faster (scripts/bench-nifti.ts).
 */
export interface GzipOptions {
  /** 0..9 (zlib) or 0..12 (libdeflate); default 1. */
  level?: number;
  library?: "zlib" | "libdeflate";
}
const DEFAULT_LEVEL = 1;
const DEFAULT_LIBRARY = "libdeflate";

const HEADER_LEN = 20; // 10 fixed + XLEN(2) + SI1 SI2 (2) + LEN(2) + u32 (4)

function memberHeader(total: number): Uint8Array {
  const h = new Uint8Array(HEADER_LEN);
  h.set([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 8, 0, 0x4e /* N */, 0x44 /* D */, 4, 0]);
  new DataView(h.buffer).setUint32(16, total, true);
  return h;
}

/** One gzip member with our "ND" length subfield, as [header, deflate body, trailer] parts. */
export function gzipMember(raw: Uint8Array, opts: GzipOptions = {}): Uint8Array[] {
  const body = deflateRaw(raw, opts);
  const trailer = new Uint8Array(8);
  const dv = new DataView(trailer.buffer);
  dv.setUint32(0, Bun.hash.crc32(raw) >>> 0, true);
  dv.setUint32(4, raw.byteLength >>> 0, true);
  return [memberHeader(HEADER_LEN + body.byteLength + 8), body, trailer];
}

function deflateRaw(raw: Uint8Array, opts: GzipOptions): Uint8Array {
  const level = opts.level ?? DEFAULT_LEVEL;
  if ((opts.library ?? DEFAULT_LIBRARY) === "libdeflate") {
    // libdeflate has no raw-deflate switch in Bun's API: take the body out of its gzip output (10-byte header,
    // 8-byte trailer; Bun writes no optional header fields).
    const g = Bun.gzipSync(raw as Uint8Array<ArrayBuffer>, { level: level as 6, library: "libdeflate" });
    return g.subarray(10, g.byteLength - 8);
  }
  return Bun.deflateSync(raw as Uint8Array<ArrayBuffer>, { level: level as 6, windowBits: -15 });
}

// ---- Worker pool (inline source, so it also works inside the compiled binary) ----

const WORKER_SRC = `
const HL = ${HEADER_LEN};
self.onmessage = (e) => {
  const m = e.data;
  try {
    if (m.op === "gzip") {
      const raw = new Uint8Array(m.buf, m.off, m.len);
      let body;
      if (m.library === "libdeflate") {
        const g = Bun.gzipSync(raw, { level: m.level, library: "libdeflate" });
        body = g.subarray(10, g.byteLength - 8);
      } else body = Bun.deflateSync(raw, { level: m.level, windowBits: -15 });
      const out = new Uint8Array(HL + body.byteLength + 8);
      const dv = new DataView(out.buffer);
      out.set([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 8, 0, 0x4e, 0x44, 4, 0]);
      dv.setUint32(16, out.byteLength, true);
      out.set(body, HL);
      dv.setUint32(HL + body.byteLength, Bun.hash.crc32(raw) >>> 0, true);
      dv.setUint32(HL + body.byteLength + 4, raw.byteLength >>> 0, true);
      postMessage({ id: m.id, out }, [out.buffer]);
    } else {
      // inflate one member of the shared input straight into its place in the shared output
      const out = Bun.gunzipSync(new Uint8Array(m.buf, m.off, m.len), { library: "libdeflate" });
      if (out.byteLength !== m.dstLen) throw new Error("member inflates to " + out.byteLength + " bytes, its trailer says " + m.dstLen);
      new Uint8Array(m.dst, m.dstOff, m.dstLen).set(out);
      postMessage({ id: m.id, out: new Uint8Array(0) });
    }
  } catch (err) {
    postMessage({ id: m.id, error: String(err && err.message || err) });
  }
};`;

interface Job {
  resolve: (u: Uint8Array) => void;
  reject: (e: Error) => void;
}

let pool: Worker[] | null = null;
const jobs = new Map<number, Job>();
let nextId = 1;

function poolSize(): number {
  const env = Number.parseInt(process.env.det_num_threads ?? "", 10);
  return Math.max(1, Math.min(Number.isFinite(env) && env > 0 ? env : availableParallelism(), 16));
}

function workers(): Worker[] {
  if (pool) return pool;
  const url = URL.createObjectURL(new Blob([WORKER_SRC], { type: "application/javascript" }));
  pool = [];
  for (let i = 0; i < poolSize(); i++) {
    const w = new Worker(url);
    w.onmessage = (e: MessageEvent) => {
      const d = e.data as { id: number; out?: Uint8Array; error?: string };
      const job = jobs.get(d.id);
      if (!job) return;
      jobs.delete(d.id);
      if (d.error !== undefined) job.reject(new Error(d.error));
      else job.resolve(d.out!);
    };
    w.unref();
    pool.push(w);
  }
  return pool;
}

function submit(w: Worker, msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Uint8Array> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    jobs.set(id, { resolve, reject });
    w.postMessage({ ...msg, id }, transfer);
  });
}

/** Run tasks on the pool, at most one in flight per worker, results in order. */
async function runAll(tasks: ((w: Worker) => Promise<Uint8Array>)[]): Promise<Uint8Array[]> {
  const ws = workers();
  const out: Uint8Array[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    ws.map(async (w) => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]!(w);
      }
    }),
  );
  return out;
}

/**
 * gzip `parts` (concatenated) as a sequence of members, CHUNK bytes each; returns the members in order.
 * Large inputs are compressed on the Worker pool; a chunk in shared memory is read by the worker in place, any other
 * chunk is copied to it.
 */
export async function gzipChunks(parts: Uint8Array[], opts: GzipOptions = {}): Promise<Uint8Array[]> {
  const total = parts.reduce((s, p) => s + p.byteLength, 0);
  const chunks: Uint8Array[] = [];
  for (const p of parts) for (let o = 0; o < p.byteLength; o += CHUNK) chunks.push(p.subarray(o, o + CHUNK));
  if (total < PARALLEL_MIN) return chunks.flatMap((c) => gzipMember(c, opts));
  const level = opts.level ?? DEFAULT_LEVEL;
  const library = opts.library ?? DEFAULT_LIBRARY;
  const tasks = chunks.map((c) => (w: Worker) => {
    if (c.buffer instanceof SharedArrayBuffer) {
      return submit(w, { op: "gzip", buf: c.buffer, off: c.byteOffset, len: c.byteLength, level, library });
    }
    const copy = c.slice();
    return submit(w, { op: "gzip", buf: copy.buffer, off: 0, len: copy.byteLength, level, library }, [copy.buffer]);
  });
  return await runAll(tasks);
}

/** Member boundaries [start, end) of a file written by gzipChunks, or null when it lacks our "ND" index. */
export function memberIndex(z: Uint8Array): [number, number][] | null {
  const out: [number, number][] = [];
  const dv = new DataView(z.buffer, z.byteOffset, z.byteLength);
  let o = 0;
  while (o < z.byteLength) {
    if (o + HEADER_LEN > z.byteLength) return null;
    if (z[o] !== 0x1f || z[o + 1] !== 0x8b || z[o + 3] !== 4 || z[o + 12] !== 0x4e || z[o + 13] !== 0x44) return null;
    const len = dv.getUint32(o + 16, true);
    if (len < HEADER_LEN + 8 || o + len > z.byteLength) return null;
    out.push([o, o + len]);
    o += len;
  }
  return out.length > 0 ? out : null;
}

function gunzipError(file: string, e: unknown): Error {
  return new Error(`${file}: corrupt or truncated gzip stream (${(e as Error).message})`);
}

/**
 * Inflate a whole .gz file. `expected` is the byte count the caller needs at least (NIfTI header + voxels); a
 * shorter result is returned as is and the caller reports it.
 */
export async function gunzipFile(z: Uint8Array, file: string, expected: number): Promise<Uint8Array> {
  const index = memberIndex(z);
  if (index && index.length > 1) {
    // Each member's trailer gives its inflated size (< 4 GiB per member): the output is allocated once, and members
    // are inflated into it, in parallel when large (shared memory: no copies between threads).
    const dv = new DataView(z.buffer, z.byteOffset, z.byteLength);
    const sizes = index.map(([, e]) => dv.getUint32(e - 4, true));
    const total = sizes.reduce((a, b) => a + b, 0);
    const parallel = total >= PARALLEL_MIN && index.length > 2 && z.buffer instanceof SharedArrayBuffer;
    const out = new Uint8Array(parallel ? new SharedArrayBuffer(total) : new ArrayBuffer(total));
    try {
      if (parallel) {
        let o = 0;
        const offs = sizes.map((n) => ((o += n), o - n));
        await runAll(
          index.map(([s, e], i) => (w: Worker) =>
            submit(w, { op: "gunzip", buf: z.buffer, off: z.byteOffset + s, len: e - s, dst: out.buffer, dstOff: offs[i], dstLen: sizes[i] }),
          ),
        );
      } else {
        let o = 0;
        index.forEach(([s, e], i) => {
          const part = Bun.gunzipSync(z.subarray(s, e) as Uint8Array<ArrayBuffer>, { library: "libdeflate" });
          if (part.byteLength !== sizes[i]) throw new Error(`member ${i} inflates to ${part.byteLength} bytes, its trailer says ${sizes[i]}`);
          out.set(part, o);
          o += part.byteLength;
        });
      }
    } catch (e) {
      throw gunzipError(file, e);
    }
    return out;
  }
  // One member (nibabel, ITK, gzip): libdeflate inflates it about 15% faster than zlib. Anything it rejects goes
  // to node:zlib below, which also names the problem of a truncated or corrupt stream.
  let out: Uint8Array = new Uint8Array(0);
  try {
    out = Bun.gunzipSync(z as Uint8Array<ArrayBuffer>, { library: "libdeflate" });
  } catch {
    out = new Uint8Array(0);
  }
  if (out.byteLength >= expected) return out;
  // Shorter than needed: either several members (Bun stops after the first) or a short file. node:zlib reads every
  // member and fails on a truncated one.
  try {
    const all = zlib.gunzipSync(z);
    return new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
  } catch (e) {
    throw gunzipError(file, e);
  }
}

