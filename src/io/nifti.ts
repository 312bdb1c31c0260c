// NIfTI read/write (.nii and .nii.gz; NIfTI-1 and NIfTI-2, either endianness) as SimpleITK/nnDetection see it.
//
// Axis convention (design §6): a NIfTI volume of size (ni, nj, nk) becomes an array of shape [nk][nj][ni] in C order
// (i fastest, the file's own voxel order, so no reordering happens). `spacing` is in array order [sk, sj, si];
// `geometry` keeps SimpleITK's ITK order (spacing (si, sj, sk), LPS origin, row-major direction), as nnDetection
// stores itk_spacing/itk_origin/itk_direction. Which of sform/qform is used, and the RAS->LPS flip: nifti-header.ts.
// Data is always returned as float32 (nnDetection casts every image to float32), with scl_slope/scl_inter applied as
// nibabel does (slope 0 or non-finite: no scaling). Little-endian unscaled float32 is returned as a view of the
// decompressed bytes (no copy); every other type is converted once by the native convertToF32.
// Writing: NIfTI-1 with qform and sform (both SCANNER_ANAT) from the geometry, scl_slope 1, the TypedArray's own
// datatype, gzip members compressed in parallel (gzip.ts); the file appears atomically (temp name, then rename).
// Round trips are exact for data, and for geometry up to float32 (the precision of NIfTI-1's fields).
import { closeSync, existsSync, openSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { convertToF32 } from "../native";
import { type GzipOptions, gunzipFile, gzipChunks } from "./gzip";
import {
  BYTES_OF,
  DATATYPE_CODES,
  encodeHeader,
  type Geometry,
  type GeometrySource,
  itkGeometry,
  type NiftiDType,
  NiftiError,
  type NiftiHeader,
  parseHeader,
} from "./nifti-header";

export { type Geometry, NiftiError, type NiftiHeader } from "./nifti-header";

export type Shape3 = [number, number, number];

export interface NiftiImage {
  file: string;
  /** Voxel values (scaled) in array order [k][j][i]. */
  data: Float32Array;
  /** [nk, nj, ni] */
  shape: Shape3;
  /** Array order [sk, sj, si] (ITK spacing reversed). */
  spacing: Shape3;
  geometry: Geometry & { source: GeometrySource };
  /** Datatype on disk, and the header as stored. */
  dtype: NiftiDType;
  header: NiftiHeader;
  /** Number of dimensions SimpleITK would report (trailing singleton dims beyond 3 dropped). */
  ndim: number;
}

/** Array shape of a header, refusing what nnDetection cannot use (4D with several volumes, >7 dims). */
function shapeOf(h: NiftiHeader, file: string): { shape: Shape3; ndim: number } {
  const n = h.dim[0]!;
  if (!(n >= 1 && n <= 7)) throw new NiftiError(file, `dim[0] = ${n} is not a valid number of dimensions`);
  const d = [1, 2, 3, 4, 5, 6, 7].map((i) => (i <= n ? h.dim[i]! : 1));
  for (let i = 0; i < n; i++) {
    if (!(d[i]! >= 1)) throw new NiftiError(file, `dim[${i + 1}] = ${d[i]} is not a positive size`);
  }
  for (let i = 3; i < 7; i++) {
    if (d[i]! > 1) throw new NiftiError(file, `${n}D image with dim[${i + 1}] = ${d[i]}: only 3D volumes are supported`);
  }
  let ndim = n;
  while (ndim > 3 && d[ndim - 1] === 1) ndim--;
  return { shape: [d[2]!, d[1]!, d[0]!], ndim };
}

function dtypeOf(h: NiftiHeader, file: string): NiftiDType {
  const dt = DATATYPE_CODES[h.datatype];
  if (!dt) throw new NiftiError(file, "", `unsupported datatype ${h.datatype} in ${file} (nndet reads uint8, int8, int16, uint16, int32, uint32, float32, float64)`);
  return dt;
}

/** nibabel's rule: slope 0 or NaN (or infinite) means no scaling; a non-finite intercept is 0. */
function scaling(h: NiftiHeader): { slope: number; inter: number } | null {
  const s = h.sclSlope;
  if (s === 0 || !Number.isFinite(s)) return null;
  const i = Number.isFinite(h.sclInter) ? h.sclInter : 0;
  return s === 1 && i === 0 ? null : { slope: s, inter: i };
}

async function fileBytes(file: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await Bun.file(file).arrayBuffer());
  } catch (e) {
    throw new NiftiError(file, `cannot read (${(e as Error).message})`);
  }
  if (bytes.byteLength === 0) throw new NiftiError(file, "empty file");
  return bytes;
}

function isGzip(b: Uint8Array): boolean {
  return b.byteLength >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/** Read a .nii or .nii.gz file (see the conventions at the top of this file). */
export async function readNifti(file: string): Promise<NiftiImage> {
  const raw = await fileBytes(file);
  let bytes = raw;
  let h: NiftiHeader;
  if (isGzip(raw)) {
    // The header must be known to know how many bytes to expect; inflate everything, then parse.
    bytes = await gunzipFile(raw, file, 0);
    if (bytes.byteLength === 0) throw new NiftiError(file, "gzip stream holds no data");
  } else if (file.endsWith(".gz")) {
    throw new NiftiError(file, "not a gzip file (wrong magic bytes) although the name ends in .gz");
  }
  h = parseHeader(bytes, file);
  const dtype = dtypeOf(h, file);
  const { shape, ndim } = shapeOf(h, file);
  const geometry = itkGeometry(h, file);
  const n = shape[0] * shape[1] * shape[2];
  const size = BYTES_OF[dtype];
  const off = h.voxOffset;
  const minOff = h.version === 1 ? 348 : 540;
  if (!Number.isInteger(off) || off < minOff) throw new NiftiError(file, `vox_offset ${off} is invalid`);
  if (bytes.byteLength < off + n * size && isGzip(raw)) {
    // Several gzip members that Bun's one-shot inflate stopped short of: inflate them all.
    bytes = await gunzipFile(raw, file, off + n * size);
  }
  if (bytes.byteLength < off + n * size) {
    throw new NiftiError(
      file,
      `dims ${shape[2]}x${shape[1]}x${shape[0]} of ${dtype} need ${off + n * size} bytes (voxels from offset ${off}), ` +
        `the ${isGzip(raw) ? "decompressed " : ""}file has ${bytes.byteLength}: truncated, or dims inconsistent with the data`,
    );
  }
  const src = bytes.subarray(off, off + n * size);
  const sc = scaling(h);
  let data: Float32Array;
  if (dtype === "f32" && h.littleEndian && !sc && (bytes.byteOffset + off) % 4 === 0) {
    data = new Float32Array(bytes.buffer, bytes.byteOffset + off, n);
  } else {
    data = convertToF32(src, dtype, new Float32Array(n), {
      bigEndian: !h.littleEndian,
      slope: sc?.slope ?? 1,
      inter: sc?.inter ?? 0,
    });
  }
  return {
    file,
    data,
    shape,
    spacing: [geometry.spacing[2], geometry.spacing[1], geometry.spacing[0]],
    geometry,
    dtype,
    header: h,
    ndim,
  };
}

export type VoxelArray = Float32Array | Float64Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;

function dtypeOfArray(a: VoxelArray): NiftiDType {
  if (a instanceof Float32Array) return "f32";
  if (a instanceof Float64Array) return "f64";
  if (a instanceof Int32Array) return "i32";
  if (a instanceof Uint32Array) return "u32";
  if (a instanceof Int16Array) return "i16";
  if (a instanceof Uint16Array) return "u16";
  if (a instanceof Int8Array) return "i8";
  return "u8";
}

/** Identity direction, zero origin: what SimpleITK gives an image made from an array (nnDetection's example). */
export function defaultGeometry(spacing: Shape3 = [1, 1, 1]): Geometry {
  return { spacing: [...spacing], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
}

export interface WriteOptions extends GzipOptions {}

/**
 * Write `data` (array order [k][j][i], shape [nk, nj, ni]) with `geometry` (ITK order) to `.nii.gz` or `.nii`.
 * The datatype is the array's own (Float32Array -> float32, Uint8Array -> uint8, ...). Atomic: temp name + rename.
 */
export async function writeNifti(
  file: string,
  img: { data: VoxelArray; shape: Shape3; geometry: Geometry },
  opts: WriteOptions = {},
): Promise<void> {
  const { data, shape, geometry } = img;
  const n = shape[0] * shape[1] * shape[2];
  if (data.length !== n) throw new NiftiError(file, `data has ${data.length} values, shape ${shape.join("x")} needs ${n}`);
  if (!file.endsWith(".nii") && !file.endsWith(".nii.gz")) throw new NiftiError(file, "name must end in .nii or .nii.gz");
  const header = encodeHeader([shape[2], shape[1], shape[0]], dtypeOfArray(data), geometry);
  const body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const parts = file.endsWith(".gz") ? await gzipChunks([header, body], opts) : [header, body];
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  const fd = openSync(tmp, "w");
  try {
    for (const p of parts) {
      let o = 0;
      while (o < p.byteLength) o += writeSync(fd, p, o, p.byteLength - o);
    }
  } catch (e) {
    closeSync(fd);
    if (existsSync(tmp)) unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

/** File size in bytes, or -1 if it does not exist. */
export function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return -1;
  }
}
