// A small safetensors reader/writer (https://github.com/huggingface/safetensors format): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, optional
// "__metadata__": {string: string}}, then the raw little-endian data. Only F32 is read and written (model
// weights and fixtures are fp32); a tensor of shape [] holds one value.
import { readFileSync, writeFileSync } from "node:fs";

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export interface SafeTensors {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

function fail(msg: string): never {
  throw new Error(`safetensors: ${msg}`);
}

/** Parse safetensors bytes. Tensor data is copied into fresh, aligned Float32Arrays. */
export function parseSafetensors(bytes: Uint8Array): SafeTensors {
  if (bytes.byteLength < 8) fail(`file of ${bytes.byteLength} bytes is too short`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = Number(dv.getBigUint64(0, true));
  if (hlen > bytes.byteLength - 8) fail(`header length ${hlen} exceeds the file (${bytes.byteLength} bytes)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen))) as Record<string, unknown>;
  } catch (e) {
    fail(`header is not JSON: ${(e as Error).message}`);
  }
  const base = 8 + hlen;
  const dataLen = bytes.byteLength - base;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (e.dtype !== "F32") fail(`${name}: dtype ${e.dtype} is not supported (only F32)`);
    if (!Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) fail(`${name}: missing shape or data_offsets`);
    const n = e.shape.reduce((a, b) => a * b, 1);
    const [b0, b1] = e.data_offsets;
    if (!(b0 >= 0 && b1 <= dataLen && b1 - b0 === n * 4)) {
      fail(`${name}: data_offsets [${b0}, ${b1}] do not hold ${n} float32 values within ${dataLen} data bytes`);
    }
    const data = new Float32Array(n);
    new Uint8Array(data.buffer).set(bytes.subarray(base + b0, base + b1));
    tensors.set(name, { shape: e.shape.slice(), data });
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string): SafeTensors {
  return parseSafetensors(new Uint8Array(readFileSync(path)));
}

/** Serialise tensors (in the map's order) with optional string metadata. */
export function serializeSafetensors(tensors: Map<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) fail(`${name}: shape [${t.shape}] needs ${n} values, data has ${t.data.length}`);
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [off, off + n * 4] };
    off += n * 4;
  }
  let h = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(h.byteLength / 8) * 8;
  if (padded !== h.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(h);
    h = p;
  }
  const out = new Uint8Array(8 + h.byteLength + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.byteLength), true);
  out.set(h, 8);
  let pos = 8 + h.byteLength;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

export function writeSafetensors(path: string, tensors: Map<string, Tensor>, metadata?: Record<string, string>): void {
  writeFileSync(path, serializeSafetensors(tensors, metadata));
}
