// NumPy .npy files (format 1.0/2.0/3.0), C-order, little-endian: read (memory-mapped with Bun.mmap when
// the data offset is aligned for the element type) and write (atomically: temp name, then rename).
// Supported dtypes: f4 f8 i1 u1 i2 u2 i4 u4 i8 (bool reads as u1). The header is the Python dict literal
// numpy writes: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }, padded so that the data
// starts at a multiple of 64 bytes.
import { closeSync, openSync, readSync, renameSync, unlinkSync, writeSync } from "node:fs";

export type NpyDtype = "f4" | "f8" | "i1" | "u1" | "i2" | "u2" | "i4" | "u4" | "i8";
export type NpyArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array;

export interface Npy<T extends NpyArray = NpyArray> {
  dtype: NpyDtype;
  shape: number[];
  data: T;
}

const CTORS = {
  f4: Float32Array,
  f8: Float64Array,
  i1: Int8Array,
  u1: Uint8Array,
  i2: Int16Array,
  u2: Uint16Array,
  i4: Int32Array,
  u4: Uint32Array,
  i8: BigInt64Array,
} as const;

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** The dtype code of a typed array. */
export function dtypeOf(a: NpyArray): NpyDtype {
  for (const [k, C] of Object.entries(CTORS)) if (a instanceof C) return k as NpyDtype;
  throw new TypeError("unsupported array type for .npy");
}

function parseHeader(buf: Uint8Array, path: string): { dtype: NpyDtype; shape: number[]; offset: number } {
  for (let i = 0; i < 6; i++) if (buf[i] !== MAGIC[i]) throw new Error(`${path}: not a .npy file (bad magic)`);
  const major = buf[6]!;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const [hlen, start] = major === 1 ? [dv.getUint16(8, true), 10] : [dv.getUint32(8, true), 12];
  if (major < 1 || major > 3) throw new Error(`${path}: unsupported .npy version ${major}`);
  const text = new TextDecoder().decode(buf.subarray(start, start + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(text)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(text)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`${path}: malformed .npy header: ${text}`);
  if (fortran === "True") throw new Error(`${path}: Fortran-order arrays are not supported`);
  const m = /^([<|=])([a-z])(\d+)$/.exec(descr.replace("|b1", "|u1"));
  const code = m ? `${m[2]}${m[3]}` : "";
  if (!m || !(code in CTORS)) throw new Error(`${path}: unsupported dtype ${descr}`);
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => Number.parseInt(s, 10));
  return { dtype: code as NpyDtype, shape, offset: start + hlen };
}

/** Read a .npy file. With `mmap` (default) the array views the mapped file when alignment allows. */
export function readNpy<T extends NpyArray = NpyArray>(path: string, opts: { mmap?: boolean } = {}): Npy<T> {
  const useMmap = opts.mmap ?? true;
  let bytes: Uint8Array;
  if (useMmap) {
    bytes = Bun.mmap(path, { shared: false });
  } else {
    const fd = openSync(path, "r");
    try {
      const size = Bun.file(path).size;
      bytes = new Uint8Array(size);
      let off = 0;
      while (off < size) off += readSync(fd, bytes, off, size - off, off);
    } finally {
      closeSync(fd);
    }
  }
  const { dtype, shape, offset } = parseHeader(bytes, path);
  const C = CTORS[dtype];
  const n = shape.reduce((a, b) => a * b, 1);
  const need = n * C.BYTES_PER_ELEMENT;
  if (bytes.byteLength - offset < need) {
    throw new Error(`${path}: truncated: shape ${JSON.stringify(shape)} needs ${need} data bytes, file has ${bytes.byteLength - offset}`);
  }
  const at = bytes.byteOffset + offset;
  const data =
    at % C.BYTES_PER_ELEMENT === 0
      ? new C(bytes.buffer as ArrayBuffer, at, n)
      : new C(bytes.buffer.slice(at, at + need) as ArrayBuffer);
  return { dtype, shape, data: data as T };
}

/** Only the header (dtype, shape) of a .npy file, without reading its data. */
export function readNpyHeader(path: string): { dtype: NpyDtype; shape: number[]; dataOffset: number } {
  const fd = openSync(path, "r");
  try {
    const head = new Uint8Array(4096);
    const got = readSync(fd, head, 0, head.length, 0);
    const h = parseHeader(head.subarray(0, got), path);
    return { dtype: h.dtype, shape: h.shape, dataOffset: h.offset };
  } finally {
    closeSync(fd);
  }
}

/** The .npy header bytes for an array of this dtype and shape (version 1.0, data aligned to 64). */
export function npyHeader(dtype: NpyDtype, shape: number[]): Uint8Array {
  const endian = dtype === "u1" || dtype === "i1" ? "|" : "<";
  const shp = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let dict = `{'descr': '${endian}${dtype}', 'fortran_order': False, 'shape': ${shp}, }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - 10 - 1, " ") + "\n";
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, dict.length, true);
  out.set(new TextEncoder().encode(dict), 10);
  return out;
}

/** Write a .npy file atomically (temp file in the same folder, then rename over `path`). */
export function writeNpy(path: string, data: NpyArray, shape: number[]): void {
  writeNpyParts(path, [data], shape);
}

/** Write the concatenation of same-typed arrays as one .npy file (no concatenated copy is made). */
export function writeNpyParts(path: string, parts: NpyArray[], shape: number[]): void {
  const n = shape.reduce((a, b) => a * b, 1);
  const len = parts.reduce((a, p) => a + p.length, 0);
  if (n !== len) throw new Error(`writeNpy ${path}: shape ${JSON.stringify(shape)} has ${n} elements, data ${len}`);
  const dtype = dtypeOf(parts[0]!);
  if (parts.some((p) => dtypeOf(p) !== dtype)) throw new Error(`writeNpy ${path}: parts of different types`);
  const header = npyHeader(dtype, shape);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, header);
    for (const data of parts) {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const CH = 1 << 26;
      for (let off = 0; off < bytes.length; off += CH) writeSync(fd, bytes.subarray(off, Math.min(bytes.length, off + CH)));
    }
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}
