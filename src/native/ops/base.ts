// Typed wrappers of the base family: element conversion, statistics, CPU and build info. Each passes
// TypedArrays straight through (zero-copy) and calls check().
import { check } from "../errors";
import { native } from "../lib";

/** Element type codes (mirror of crates/nndet-core/src/dtype.rs). */
export const DType = { u8: 0, i8: 1, i16: 2, u16: 3, i32: 4, u32: 5, f32: 6, f64: 7 } as const;
export type DTypeName = keyof typeof DType;
export const dtypeSize: Record<DTypeName, number> = { u8: 1, i8: 1, i16: 2, u16: 2, i32: 4, u32: 4, f32: 4, f64: 8 };

/** Bytes of `dtype` elements (either endianness) to float32 with y = x*slope + inter (f64 arithmetic). */
export function convertToF32(
  src: Uint8Array,
  dtype: DTypeName,
  dst: Float32Array,
  opts: { bigEndian?: boolean; slope?: number; inter?: number } = {},
): Float32Array {
  const code = DType[dtype];
  if (code === undefined) throw new TypeError(`unknown dtype ${dtype}`);
  check(
    native().nd_convert_f32(
      src,
      src.byteLength,
      code,
      opts.bigEndian ? 1 : 0,
      opts.slope ?? 1,
      opts.inter ?? 0,
      dst,
      dst.length,
    ),
    "convertToF32",
  );
  return dst;
}

export interface F32Stats {
  min: number;
  max: number;
  sum: number;
  sumsq: number;
  finite: number;
  nan: number;
  inf: number;
}

/** min/max/sum/sum of squares over finite values, and counts of finite, NaN and infinite values. */
export function statsF32(x: Float32Array): F32Stats {
  const out = new Float64Array(7);
  check(native().nd_stats_f32(x, x.length, out, out.length), "statsF32");
  const [min, max, sum, sumsq, finite, nan, inf] = out as unknown as number[];
  return { min: min!, max: max!, sum: sum!, sumsq: sumsq!, finite: finite!, nan: nan!, inf: inf! };
}

export interface CpuInfo {
  features: string[];
  level: "scalar" | "avx2" | "avx512";
  threads: number;
}

const FEATURE_BITS = ["sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512bf16"];

export function cpuInfo(): CpuInfo {
  const f = new Uint32Array(1);
  const l = new Int32Array(1);
  check(native().nd_cpu_features(f, l), "cpuFeatures");
  const t = new Int32Array(1);
  check(native().nd_num_threads(t), "numThreads");
  const features = FEATURE_BITS.filter((_, i) => (f[0]! >>> i) & 1);
  const level = (["scalar", "avx2", "avx512"] as const)[l[0]!] ?? "scalar";
  return { features, level, threads: t[0]! };
}

export interface BuildInfo {
  version: string;
  abi: number;
  cuda: boolean;
  target: string;
  debug: boolean;
}

export function buildInfo(): BuildInfo {
  const buf = new Uint8Array(1024);
  const len = new Int32Array(1);
  check(native().nd_build_info(buf, buf.length, len), "buildInfo");
  return JSON.parse(new TextDecoder().decode(buf.subarray(0, Math.min(len[0]!, buf.length - 1)))) as BuildInfo;
}

/** Test-only: makes the core panic inside its ABI guard (code >= 0); must surface as a NativeError. */
export function debugPanic(code: number): void {
  check(native().nd_debug_panic(code), "debugPanic");
}
