// Buffers owned by the native side: 64-byte aligned host memory (HostBuffer) and device memory
// (DeviceBuffer) on a device backend: "cuda" (the GPU) or "emu" (the CPU emulator that runs the same kernel
// sources; tests and debugging), plus the CUDA device queries. Both are freed explicitly with free(); a
// FinalizationRegistry only reports a buffer that was garbage-collected without being freed (a leak).
import { toArrayBuffer } from "bun:ffi";
import { check, NativeError } from "./errors";
import { native } from "./lib";

const leaks = new FinalizationRegistry<string>((what) => {
  if (process.env.ND_DEBUG && Number(process.env.ND_DEBUG) >= 1) console.error(`nndet: leaked ${what}`);
});

/** Rust-owned host memory that the JIT never moves. View it with `.bytes` / `.f32()`. */
export class HostBuffer {
  readonly bytes: Uint8Array;
  readonly byteLength: number;
  #addr: number;
  constructor(byteLength: number) {
    const out = new BigUint64Array(1);
    check(native().nd_host_alloc(byteLength, out), "hostAlloc");
    this.#addr = Number(out[0]);
    this.byteLength = byteLength;
    this.bytes =
      byteLength > 0 ? new Uint8Array(toArrayBuffer(this.#addr as never, 0, byteLength)) : new Uint8Array(0);
    leaks.register(this, `host buffer of ${byteLength} bytes`, this);
  }
  get address(): number {
    return this.#addr;
  }
  get freed(): boolean {
    return this.#addr === 0;
  }
  f32(): Float32Array {
    return new Float32Array(this.bytes.buffer, this.bytes.byteOffset, this.byteLength >> 2);
  }
  free(): void {
    if (this.#addr === 0) throw new Error("host buffer freed twice");
    check(native().nd_host_free(this.#addr), "hostFree");
    this.#addr = 0;
    leaks.unregister(this);
  }
}

/** Where device kernels run: the GPU, or the CPU emulator of the same kernels (cuda/emu/). */
export type DeviceKind = "cuda" | "emu";
export const BACKEND_CODE: Record<DeviceKind, number> = { cuda: 0, emu: 1 };

/** A device allocation on `kind`, referred to by its address (`handle`; sub-ranges by byte offset). */
export class DeviceBuffer {
  readonly byteLength: number;
  readonly kind: DeviceKind;
  #handle: bigint;
  constructor(byteLength: number, kind: DeviceKind = "cuda") {
    const out = new BigUint64Array(1);
    check(native().nd_dev_malloc(BACKEND_CODE[kind], byteLength, out), "deviceMalloc");
    this.#handle = out[0]!;
    this.byteLength = byteLength;
    this.kind = kind;
    leaks.register(this, `${kind} device buffer of ${byteLength} bytes`, this);
  }
  get handle(): bigint {
    return this.#handle;
  }
  /** The device address `offset` bytes in. */
  at(offset: number): bigint {
    return this.#handle + BigInt(offset);
  }
  upload(src: ArrayBufferView, offset = 0): void {
    const bytes = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    check(native().nd_dev_upload(BACKEND_CODE[this.kind], this.#handle, offset, bytes, bytes.byteLength), "deviceUpload");
  }
  download<T extends ArrayBufferView>(dst: T, offset = 0): T {
    const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    check(native().nd_dev_download(BACKEND_CODE[this.kind], this.#handle, offset, bytes, bytes.byteLength), "deviceDownload");
    return dst;
  }
  /** Fill `bytes` from `offset` with the byte `value` (synchronous, like upload and download). */
  fill(value: number, offset = 0, bytes = this.byteLength - offset): void {
    check(native().nd_dev_memset(BACKEND_CODE[this.kind], this.at(offset), value, bytes), "deviceMemset");
  }
  free(): void {
    check(native().nd_dev_free(BACKEND_CODE[this.kind], this.#handle), "deviceFree");
    this.#handle = 0n;
    leaks.unregister(this);
  }
}

export interface CudaDevice {
  index: number;
  name: string;
  totalMemory: number;
  computeCapability: string;
  multiprocessors: number;
}

export interface CudaReport {
  built: boolean;
  runtimeVersion?: string;
  driverVersion?: string;
  devices: CudaDevice[];
  /** Why no device can be used, when `devices` is empty. */
  reason?: string;
}

function cudaVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

export function hasCuda(): boolean {
  return native().nd_has_cuda() === 1;
}

export function cudaDeviceCount(): number {
  const n = new Int32Array(1);
  check(native().nd_device_count(n), "cudaDeviceCount");
  return n[0]!;
}

export function cudaDeviceProps(index: number): CudaDevice {
  const name = new Uint8Array(256);
  const nums = new BigUint64Array(4);
  check(native().nd_device_props(index, name, name.length, nums, nums.length), "cudaDeviceProps");
  const end = name.indexOf(0);
  return {
    index,
    name: new TextDecoder().decode(name.subarray(0, end < 0 ? name.length : end)),
    totalMemory: Number(nums[0]),
    computeCapability: `${nums[1]}.${nums[2]}`,
    multiprocessors: Number(nums[3]),
  };
}

/** Everything `nndet env` says about CUDA; never throws for a missing GPU or driver. */
export function cudaReport(): CudaReport {
  const built = hasCuda();
  if (!built) return { built, devices: [], reason: "this build has no CUDA backend (built without nvcc)" };
  const report: CudaReport = { built, devices: [] };
  try {
    const r = new Int32Array(1);
    const d = new Int32Array(1);
    check(native().nd_cuda_versions(r, d), "cudaVersions");
    report.runtimeVersion = cudaVersion(r[0]!);
    report.driverVersion = d[0]! > 0 ? cudaVersion(d[0]!) : "none";
    const n = cudaDeviceCount();
    for (let i = 0; i < n; i++) report.devices.push(cudaDeviceProps(i));
    if (n === 0) report.reason = "no CUDA device found";
  } catch (e) {
    if (!(e instanceof NativeError)) throw e;
    report.reason = e.detail;
  }
  return report;
}

/** Wait for the device `kind`; reports the first kernel error, if any. */
export function deviceSync(kind: DeviceKind = "cuda"): void {
  check(native().nd_dev_sync(BACKEND_CODE[kind]), "deviceSync");
}

/** A stream on device `kind`: kernels queued on it run in order; `sync()` waits for them. */
export class DeviceStream {
  readonly kind: DeviceKind;
  #handle: bigint;
  constructor(kind: DeviceKind) {
    const out = new BigUint64Array(1);
    check(native().nd_dev_stream_create(BACKEND_CODE[kind], out), "streamCreate");
    this.kind = kind;
    this.#handle = out[0]!;
  }
  get handle(): bigint {
    return this.#handle;
  }
  sync(): void {
    check(native().nd_dev_stream_sync(BACKEND_CODE[this.kind], this.#handle), "streamSync");
  }
  destroy(): void {
    check(native().nd_dev_stream_destroy(BACKEND_CODE[this.kind], this.#handle), "streamDestroy");
    this.#handle = 0n;
  }
}

/** y = a*x + y on two device buffers of n float32 (the smoke kernel). */
export function deviceSaxpy(a: number, x: DeviceBuffer, y: DeviceBuffer, n: number): void {
  if (x.kind !== y.kind) throw new Error(`deviceSaxpy: buffers of two backends (${x.kind}, ${y.kind})`);
  check(native().nd_dev_saxpy(BACKEND_CODE[x.kind], a, x.handle, y.handle, n), "deviceSaxpy");
}
