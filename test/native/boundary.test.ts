// The native boundary: library loading and ABI, the symbol table against the library's exports, status codes
// against error.rs, buffer/pointer checks, panics, host buffers, the thread pool size, and CUDA basics
// (an error with a reason on a machine without a GPU; a round trip when ND_REQUIRE_CUDA=1).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  ABI_VERSION,
  convertToF32,
  cpuInfo,
  cudaReport,
  deviceSaxpy,
  debugPanic,
  DeviceBuffer,
  type DeviceKind,
  deviceSync,
  HostBuffer,
  hasCuda,
  loadedLibraryPath,
  NativeError,
  Status,
  statsF32,
} from "../../src/native";
import { lastError, native } from "../../src/native/lib";
import { symbols } from "../../src/native/symbols/index";

const root = join(import.meta.dir, "../..");
const requireCuda = process.env.ND_REQUIRE_CUDA === "1";

function nativeError(fn: () => unknown): NativeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof NativeError) return e;
    throw e;
  }
  throw new Error("expected a NativeError");
}

describe("library and ABI", () => {
  test("ABI version matches lib.rs", () => {
    const rs = readFileSync(join(root, "crates/nndet-core/src/lib.rs"), "utf8");
    const m = /pub const ABI_VERSION: i32 = (\d+);/.exec(rs);
    expect(Number(m?.[1])).toBe(ABI_VERSION);
    expect(native().nd_abi_version()).toBe(ABI_VERSION);
  });

  test("status codes mirror error.rs", () => {
    const rs = readFileSync(join(root, "crates/nndet-core/src/error.rs"), "utf8");
    const body = rs.slice(rs.indexOf("pub enum Status"), rs.indexOf("}", rs.indexOf("pub enum Status")));
    const rust = Object.fromEntries([...body.matchAll(/^\s*(\w+) = (\d+),/gm)].map((m) => [m[1], Number(m[2])]));
    expect(rust).toEqual({ ...Status });
  });

  test("every exported nd_* symbol is declared in TS and vice versa", () => {
    const lib = loadedLibraryPath();
    const out = Bun.spawnSync(["nm", "-D", "--defined-only", lib]).stdout.toString();
    const exported = [...out.matchAll(/ T (nd_\w+)$/gm)].map((m) => m[1]).sort();
    expect(exported).toEqual(Object.keys(symbols).sort());
  });
});

describe("argument checks become NativeErrors", () => {
  test("convertToF32 converts dtypes, endianness and scaling", () => {
    const src = new Uint8Array(new Int16Array([-3, 0, 7, 1000]).buffer);
    const dst = convertToF32(src, "i16", new Float32Array(4), { slope: 0.5, inter: 1 });
    expect([...dst]).toEqual([-0.5, 1, 4.5, 501]);
    const be = new Uint8Array([0x01, 0x00, 0xff, 0xfe]); // big-endian u16: 256, 65534
    expect([...convertToF32(be, "u16", new Float32Array(2), { bigEndian: true })]).toEqual([256, 65534]);
  });

  test("a wrong-size buffer gives BufferSize with a readable message", () => {
    const e = nativeError(() => convertToF32(new Uint8Array(6), "i16", new Float32Array(4)));
    expect(e.code).toBe(Status.BufferSize);
    expect(e.op).toBe("convertToF32");
    expect(e.message).toContain("6 bytes");
    expect(e.message).toContain("need 8 bytes");
  });

  test("a null pointer gives NullPointer", () => {
    const status = native().nd_convert_f32(new Uint8Array(4), 4, 0, 0, 1, 0, null, 4);
    expect(status).toBe(Status.NullPointer);
    expect(lastError()).toContain("dst is a null pointer");
    expect(native().nd_stats_f32(null, 10, new Float64Array(7), 7)).toBe(Status.NullPointer);
    expect(lastError()).toContain("x is a null pointer (expected 10 elements)");
  });

  test("an unknown dtype and bad scaling are InvalidArgument", () => {
    expect(native().nd_convert_f32(new Uint8Array(4), 4, 99, 0, 1, 0, new Float32Array(4), 4)).toBe(
      Status.InvalidArgument,
    );
    const e = nativeError(() => convertToF32(new Uint8Array(4), "u8", new Float32Array(4), { slope: Number.NaN }));
    expect(e.code).toBe(Status.InvalidArgument);
  });

  test("a panic inside Rust becomes a NativeError and the library keeps working", () => {
    const e = nativeError(() => debugPanic(7));
    expect(e.code).toBe(Status.Panic);
    expect(e.message).toContain("deliberate panic 7");
    expect(e.message).toContain("debugPanic: internal panic in nd_debug_panic");
    expect(() => debugPanic(-1)).not.toThrow();
    expect(statsF32(new Float32Array([1, 2])).sum).toBe(3);
  });
});

describe("kernels and buffers", () => {
  test("statsF32 counts NaN/Inf and sums in a fixed order", () => {
    const x = new Float32Array(300_001).map((_, i) => i % 97);
    x[10] = Number.NaN;
    x[11] = Number.POSITIVE_INFINITY;
    x[12] = Number.NEGATIVE_INFINITY;
    const s = statsF32(x);
    expect([s.nan, s.inf, s.finite]).toEqual([1, 2, 299_998]);
    let sum = 0;
    for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i]!)) sum += x[i]!;
    expect(s.sum).toBe(sum);
    expect([s.min, s.max]).toEqual([0, 96]);
  });

  test("host buffers are 64-byte aligned, zeroed, writable and freed once", () => {
    const b = new HostBuffer(1000);
    expect(b.address % 64).toBe(0);
    expect(b.bytes.every((v) => v === 0)).toBe(true);
    const f = b.f32();
    f.fill(2.5);
    expect(statsF32(f).sum).toBe(2.5 * 250);
    b.free();
    expect(b.freed).toBe(true);
    expect(() => b.free()).toThrow("freed twice");
  });

  test("the pool has det_num_threads threads", () => {
    expect(cpuInfo().threads).toBeGreaterThan(0);
    const code = `import { cpuInfo } from "${join(root, "src/native")}"; console.log(cpuInfo().threads);`;
    const r = Bun.spawnSync([process.execPath, "-e", code], { env: { ...process.env, det_num_threads: "3" } });
    expect(r.stdout.toString().trim()).toBe("3");
  });
});

describe("CUDA basics", () => {
  test("without a usable GPU the report says why; the stub says NoCuda", () => {
    const r = cudaReport();
    expect(r.built).toBe(hasCuda());
    if (r.devices.length === 0) {
      expect(r.reason).toBeTruthy();
      expect(requireCuda).toBe(false); // a GPU test that finds no GPU fails
      const e = nativeError(() => new DeviceBuffer(16));
      expect(e.code).toBe(hasCuda() ? Status.Cuda : Status.NoCuda);
      expect(e.message.length).toBeGreaterThan(10);
    }
  });

  test.if(requireCuda)("GPU: device properties", () => {
    const r = cudaReport();
    expect(r.devices.length).toBeGreaterThan(0);
    const d = r.devices[0]!;
    expect(d.totalMemory).toBeGreaterThan(1 << 30);
    expect(Number(d.computeCapability.split(".")[0])).toBeGreaterThanOrEqual(8);
  });

  for (const kind of ["emu", ...(requireCuda ? ["cuda"] : [])] as DeviceKind[]) {
    test(`${kind}: round trip, memset, saxpy, bounds, double free`, () => {
      const n = kind === "emu" ? 1 << 14 : 1 << 20;
      const x = new Float32Array(n).map((_, i) => i % 1000);
      const y = new Float32Array(n).fill(1);
      const dx = new DeviceBuffer(n * 4, kind);
      const dy = new DeviceBuffer(n * 4, kind);
      dx.upload(x);
      dy.upload(y);
      deviceSaxpy(3, dx, dy, n);
      deviceSync(kind);
      const out = dy.download(new Float32Array(n));
      for (let i = 0; i < n; i += 97) expect(out[i]).toBe(3 * (i % 1000) + 1);
      dy.fill(0, 8, 8);
      expect([...dy.download(new Float32Array(4))]).toEqual([1, 4, 0, 0]);
      const e = nativeError(() => dy.download(new Float32Array(8), n * 4 - 16));
      expect(e.code).toBe(Status.BufferSize);
      dx.free();
      dy.free();
      expect(() => dx.free()).toThrow();
    });
  }
});
