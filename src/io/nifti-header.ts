// NIfTI-1 / NIfTI-2 headers (either endianness): parse, encode, and the geometry SimpleITK reports for them.
//
// Geometry follows ITK 5.4's NiftiImageIO (SetImageIOOrientationFromNIfTI), which is what nnDetection sees through
// SimpleITK:
//   - spacing is always pixdim[1..3] (0 or non-finite -> 1; xyzt_units metre/micron scaled to mm), never the sform's
//     column norms;
//   - neither qform_code nor sform_code set: origin 0, identity direction;
//   - the sform is used when it is decomposable (every column non-zero, columns orthonormal once normalised, 1e-4)
//     and either qform_code is 0, or sform_code is SCANNER_ANAT (1), or the qform describes the same space (column
//     norms, normalised columns and offsets within 1e-4); it is also used when both forms are element-wise equal;
//   - otherwise the qform (nifti_clib's quaternion -> matrix, qfac from pixdim[0]);
//   - otherwise (only a non-orthonormal sform: shear, gantry tilt) ITK refuses the file, and so do we.
//   So a sheared sform next to a valid qform is read through the qform, exactly as ITK does (the shear is dropped).
//   ITK then flips RAS -> LPS: origin (-x, -y, z), direction rows 0 and 1 negated, columns normalised.
// NOTE: ITK's "same space" test compares SVD factors; we compare column norms and normalised columns, which agrees
// for the orthogonal matrices this test is ever reached with. Negative pixdim values are taken as their magnitude.
// nifti-reader-js was not used: we need the raw srow and quaternion fields side by side, both versions, and errors
// that name the file; the parse is a table of offsets.

export type NiftiDType = "u8" | "i8" | "i16" | "u16" | "i32" | "u32" | "f32" | "f64";

/** NIfTI datatype codes we read and write. */
export const DATATYPE_CODES: Record<number, NiftiDType> = {
  2: "u8",
  4: "i16",
  8: "i32",
  16: "f32",
  64: "f64",
  256: "i8",
  512: "u16",
  768: "u32",
};
export const CODE_OF: Record<NiftiDType, number> = { u8: 2, i16: 4, i32: 8, f32: 16, f64: 64, i8: 256, u16: 512, u32: 768 };
export const BYTES_OF: Record<NiftiDType, number> = { u8: 1, i8: 1, i16: 2, u16: 2, i32: 4, u32: 4, f32: 4, f64: 8 };

export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  dim: number[]; // dim[0..7]
  datatype: number;
  bitpix: number;
  pixdim: number[]; // pixdim[0..7]
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  xyztUnits: number;
  qformCode: number;
  sformCode: number;
  quatern: [number, number, number];
  qoffset: [number, number, number];
  srow: [number[], number[], number[]]; // srow_x, srow_y, srow_z (4 each)
}

/** SimpleITK's view: ITK index order (x = NIfTI i, y = j, z = k), LPS world coordinates in mm. */
export interface Geometry {
  spacing: [number, number, number];
  origin: [number, number, number];
  /** Row-major 3x3 as SimpleITK GetDirection(); column c is the LPS direction of index axis c. */
  direction: number[];
}

export class NiftiError extends Error {
  /** `message` is `FILE: reason`, or `whole` verbatim when given. */
  constructor(file: string, reason: string, whole?: string) {
    super(whole ?? `${file}: ${reason}`);
    this.name = "NiftiError";
  }
}

/** Parse the header at the start of `b` (at least 348 bytes; 540 for NIfTI-2). */
export function parseHeader(b: Uint8Array, file: string): NiftiHeader {
  if (b.byteLength === 0) throw new NiftiError(file, "empty file");
  if (b.byteLength < 348) throw new NiftiError(file, `too short for a NIfTI header (${b.byteLength} bytes)`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let le = true;
  let size = dv.getInt32(0, true);
  if (size !== 348 && size !== 540) {
    le = false;
    size = dv.getInt32(0, false);
  }
  if (size === 348) return parseV1(b, dv, le, file);
  if (size === 540) return parseV2(b, dv, le, file);
  throw new NiftiError(file, "not a NIfTI file (sizeof_hdr is neither 348 nor 540 in either byte order)");
}

function magic(b: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...b.subarray(at, at + n));
}

function parseV1(b: Uint8Array, dv: DataView, le: boolean, file: string): NiftiHeader {
  const m = magic(b, 344, 4);
  if (m === "ni1\0") throw new NiftiError(file, "two-file NIfTI (.hdr/.img) is not supported; use a single .nii/.nii.gz");
  if (m !== "n+1\0") throw new NiftiError(file, `wrong NIfTI-1 magic ${JSON.stringify(m)} (expected "n+1")`);
  const i16 = (o: number) => dv.getInt16(o, le);
  const f32 = (o: number) => dv.getFloat32(o, le);
  const row = (o: number) => [f32(o), f32(o + 4), f32(o + 8), f32(o + 12)];
  return {
    version: 1,
    littleEndian: le,
    dim: Array.from({ length: 8 }, (_, i) => i16(40 + 2 * i)),
    datatype: i16(70),
    bitpix: i16(72),
    pixdim: Array.from({ length: 8 }, (_, i) => f32(76 + 4 * i)),
    voxOffset: f32(108),
    sclSlope: f32(112),
    sclInter: f32(116),
    xyztUnits: dv.getUint8(123),
    qformCode: i16(252),
    sformCode: i16(254),
    quatern: [f32(256), f32(260), f32(264)],
    qoffset: [f32(268), f32(272), f32(276)],
    srow: [row(280), row(296), row(312)],
  };
}

function parseV2(b: Uint8Array, dv: DataView, le: boolean, file: string): NiftiHeader {
  if (b.byteLength < 540) throw new NiftiError(file, `too short for a NIfTI-2 header (${b.byteLength} bytes)`);
  const m = magic(b, 4, 4);
  if (m !== "n+2\0") throw new NiftiError(file, `wrong NIfTI-2 magic ${JSON.stringify(m)} (expected "n+2")`);
  const f64 = (o: number) => dv.getFloat64(o, le);
  const i64 = (o: number) => Number(dv.getBigInt64(o, le));
  const row = (o: number) => [f64(o), f64(o + 8), f64(o + 16), f64(o + 24)];
  return {
    version: 2,
    littleEndian: le,
    dim: Array.from({ length: 8 }, (_, i) => i64(16 + 8 * i)),
    datatype: dv.getInt16(12, le),
    bitpix: dv.getInt16(14, le),
    pixdim: Array.from({ length: 8 }, (_, i) => f64(104 + 8 * i)),
    voxOffset: i64(168),
    sclSlope: f64(176),
    sclInter: f64(184),
    xyztUnits: dv.getInt32(500, le),
    qformCode: dv.getInt32(344, le),
    sformCode: dv.getInt32(348, le),
    quatern: [f64(352), f64(360), f64(368)],
    qoffset: [f64(376), f64(384), f64(392)],
    srow: [row(400), row(432), row(464)],
  };
}

type M34 = number[][]; // 3 rows x 4 columns

/** nifti_clib's nifti_quatern_to_mat44 (the qform as a matrix, RAS). */
export function qformMatrix(h: NiftiHeader, d: [number, number, number]): M34 {
  let [b, c, dd] = h.quatern;
  let a = 1 - (b * b + c * c + dd * dd);
  if (a < 1e-7) {
    const n = 1 / Math.sqrt(b * b + c * c + dd * dd);
    b *= n;
    c *= n;
    dd *= n;
    a = 0;
  } else a = Math.sqrt(a);
  const xd = d[0] > 0 ? d[0] : 1;
  const yd = d[1] > 0 ? d[1] : 1;
  let zd = d[2] > 0 ? d[2] : 1;
  if (h.pixdim[0]! < 0) zd = -zd;
  const [qx, qy, qz] = h.qoffset;
  return [
    [(a * a + b * b - c * c - dd * dd) * xd, 2 * (b * c - a * dd) * yd, 2 * (b * dd + a * c) * zd, qx],
    [2 * (b * c + a * dd) * xd, (a * a + c * c - b * b - dd * dd) * yd, 2 * (c * dd - a * b) * zd, qy],
    [2 * (b * dd - a * c) * xd, 2 * (c * dd + a * b) * yd, (a * a + dd * dd - c * c - b * b) * zd, qz],
  ];
}

function columns(m: M34): { norms: number[]; dirs: number[][] } {
  const norms: number[] = [];
  const dirs: number[][] = [];
  for (let j = 0; j < 3; j++) {
    const col = [m[0]![j]!, m[1]![j]!, m[2]![j]!];
    const n = Math.hypot(col[0]!, col[1]!, col[2]!);
    norms.push(n);
    dirs.push(col.map((v) => v / n));
  }
  return { norms, dirs };
}

function orthonormal(m: M34): boolean {
  const { norms, dirs } = columns(m);
  if (!norms.every((n) => n > 0 && Number.isFinite(n))) return false;
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++) {
      const dot = dirs[i]![0]! * dirs[j]![0]! + dirs[i]![1]! * dirs[j]![1]! + dirs[i]![2]! * dirs[j]![2]!;
      if (Math.abs(dot - (i === j ? 1 : 0)) > 1e-4) return false;
    }
  return true;
}

function equalForms(s: M34, q: M34): boolean {
  let t = 0;
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) if (Math.abs(s[i]![j]! - q[i]![j]!) > 1e-5) return false;
    t += Math.abs(s[i]![3]! - q[i]![3]!);
  }
  return t <= 1e-7;
}

function sameSpace(s: M34, q: M34): boolean {
  const cs = columns(s);
  const cq = columns(q);
  const sn = [...cs.norms].sort((x, y) => x - y);
  const qn = [...cq.norms].sort((x, y) => x - y);
  for (let i = 0; i < 3; i++) {
    if (Math.abs(sn[i]! - qn[i]!) > 1e-4) return false;
    if (Math.abs(s[i]![3]! - q[i]![3]!) > 1e-4) return false;
    for (let j = 0; j < 3; j++) if (Math.abs(cs.dirs[j]![i]! - cq.dirs[j]![i]!) > 1e-4) return false;
  }
  return true;
}

export type GeometrySource = "sform" | "qform" | "none";

/** The geometry SimpleITK gives this header (see the rules at the top of the file). */
export function itkGeometry(h: NiftiHeader, file: string): Geometry & { source: GeometrySource } {
  const unit = (h.xyztUnits & 7) === 1 ? 1000 : (h.xyztUnits & 7) === 3 ? 1e-3 : 1;
  const pd = [1, 2, 3].map((i) => {
    const p = i <= Math.max(h.dim[0]!, 1) ? h.pixdim[i]! : 1;
    return p === 0 || !Number.isFinite(p) ? 1 : p;
  });
  const spacing = pd.map((p) => Math.abs(p) * unit) as [number, number, number];
  const qcode = h.qformCode > 0 ? h.qformCode : 0;
  const scode = h.sformCode > 0 ? h.sformCode : 0;
  if (qcode === 0 && scode === 0) return { spacing, origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1], source: "none" };
  const q: M34 | null = qcode ? qformMatrix(h, pd as [number, number, number]) : null;
  const s: M34 | null = scode ? h.srow.map((r) => [...r]) : null;
  let useS = s !== null && q !== null && equalForms(s, q);
  if (s && orthonormal(s)) {
    if (qcode === 0 || scode === 1) useS = true;
    else if (q) useS = sameSpace(s, q);
  }
  const m = useS ? s : q;
  if (!m) {
    throw new NiftiError(
      file,
      "the sform is not orthonormal (shear or gantry tilt) and there is no qform; ITK (SimpleITK) refuses such a file, " +
        "and so does nndet: resample it to an orthogonal grid first",
    );
  }
  const lps = [-1, -1, 1];
  const origin = [0, 1, 2].map((i) => lps[i]! * m[i]![3]! * unit) as [number, number, number];
  const direction = new Array<number>(9).fill(0);
  for (let j = 0; j < 3; j++) {
    const col = [0, 1, 2].map((i) => lps[i]! * m[i]![j]!);
    const n = Math.hypot(col[0]!, col[1]!, col[2]!);
    for (let i = 0; i < 3; i++) direction[3 * i + j] = n > 0 ? col[i]! / n : i === j ? 1 : 0;
  }
  return { spacing, origin, direction, source: useS ? "sform" : "qform" };
}

/** nifti_mat44_to_quatern for an orthonormal RAS rotation R (rows): [b, c, d] and qfac. */
function toQuatern(r: number[][]): { q: [number, number, number]; qfac: number } {
  const det =
    r[0]![0]! * (r[1]![1]! * r[2]![2]! - r[1]![2]! * r[2]![1]!) -
    r[0]![1]! * (r[1]![0]! * r[2]![2]! - r[1]![2]! * r[2]![0]!) +
    r[0]![2]! * (r[1]![0]! * r[2]![1]! - r[1]![1]! * r[2]![0]!);
  const qfac = det < 0 ? -1 : 1;
  const R = r.map((row) => [row[0]!, row[1]!, row[2]! * qfac]);
  const [r11, r12, r13] = R[0]!;
  const [r21, r22, r23] = R[1]!;
  const [r31, r32, r33] = R[2]!;
  let a = r11! + r22! + r33! + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32! - r23!)) / a;
    c = (0.25 * (r13! - r31!)) / a;
    d = (0.25 * (r21! - r12!)) / a;
  } else {
    const xd = 1 + r11! - (r22! + r33!);
    const yd = 1 + r22! - (r11! + r33!);
    const zd = 1 + r33! - (r11! + r22!);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12! + r21!)) / b;
      d = (0.25 * (r13! + r31!)) / b;
      a = (0.25 * (r32! - r23!)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12! + r21!)) / c;
      d = (0.25 * (r23! + r32!)) / c;
      a = (0.25 * (r13! - r31!)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13! + r31!)) / d;
      c = (0.25 * (r23! + r32!)) / d;
      a = (0.25 * (r21! - r12!)) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { q: [b, c, d], qfac };
}

/**
 * A NIfTI-1 header (348 bytes + 4 empty extension bytes; vox_offset 352) for a 3D volume of `size` (ITK order
 * ni, nj, nk) with qform and sform both SCANNER_ANAT, set from the geometry (as ITK writes them).
 */
export function encodeHeader(size: [number, number, number], dtype: NiftiDType, g: Geometry): Uint8Array {
  const b = new Uint8Array(352);
  const dv = new DataView(b.buffer);
  dv.setInt32(0, 348, true);
  b[39] = 0;
  const dims = [3, size[0], size[1], size[2], 1, 1, 1, 1];
  dims.forEach((v, i) => dv.setInt16(40 + 2 * i, v, true));
  dv.setInt16(70, CODE_OF[dtype], true);
  dv.setInt16(72, BYTES_OF[dtype] * 8, true);
  // RAS rotation R = diag(-1,-1,1) * D
  const lps = [-1, -1, 1];
  const R = [0, 1, 2].map((i) => [0, 1, 2].map((j) => lps[i]! * g.direction[3 * i + j]!));
  const { q, qfac } = toQuatern(R);
  const pixdim = [qfac, g.spacing[0], g.spacing[1], g.spacing[2], 0, 0, 0, 0];
  pixdim.forEach((v, i) => dv.setFloat32(76 + 4 * i, v, true));
  dv.setFloat32(108, 352, true);
  dv.setFloat32(112, 1, true); // scl_slope
  dv.setFloat32(116, 0, true); // scl_inter
  b[123] = 2 | 8; // mm, sec
  dv.setInt16(252, 1, true);
  dv.setInt16(254, 1, true);
  q.forEach((v, i) => dv.setFloat32(256 + 4 * i, v, true));
  const ras = [0, 1, 2].map((i) => lps[i]! * g.origin[i]!);
  ras.forEach((v, i) => dv.setFloat32(268 + 4 * i, v, true));
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) dv.setFloat32(280 + 16 * i + 4 * j, R[i]![j]! * g.spacing[j]!, true);
    dv.setFloat32(280 + 16 * i + 12, ras[i]!, true);
  }
  b.set([0x6e, 0x2b, 0x31, 0], 344); // "n+1\0"
  return b;
}
