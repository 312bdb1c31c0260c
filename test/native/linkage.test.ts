// The embedded library's only GPU dependency is the NVIDIA driver: cudart is linked statically (it opens
// libcuda at run time), so the dynamic section names only the C/C++ runtime. The CUDA build also carries the
// kernels' device code (the .nv_fatbin section); the stub build carries none. Uses binutils' readelf (the
// build needs binutils anyway: ld, objcopy, ar).
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { hasCuda, loadedLibraryPath } from "../../src/native";

const ALLOWED = new Set(["libc.so.6", "libm.so.6", "libgcc_s.so.1", "libstdc++.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "ld-linux-x86-64.so.2"]);

function readelf(args: string[], file: string): string {
  const r = Bun.spawnSync(["readelf", ...args, file]);
  if (r.exitCode !== 0) throw new Error(`readelf ${args.join(" ")} ${file}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

const libs = [loadedLibraryPath(), "build/stub-lib/libnndet_core.so"].filter((p, i, a) => existsSync(p) && a.indexOf(p) === i);

describe("native library linkage", () => {
  for (const lib of libs) {
    test(`${lib}: needs nothing CUDA, only the C/C++ runtime`, () => {
      const needed = [...readelf(["-d", "-W"], lib).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
      expect(needed.length).toBeGreaterThan(0);
      for (const n of needed) expect(ALLOWED.has(n) ? n : `unexpected dependency ${n}`).toBe(n);
      expect(needed.some((n) => /cuda|cudart|cublas|cudnn|nvrtc/.test(n))).toBe(false);
    });
  }

  test("the CUDA build carries device code; the emulator's symbols stay inside", () => {
    const lib = loadedLibraryPath();
    const sections = readelf(["-S", "-W"], lib);
    expect(sections.includes(".nv_fatbin")).toBe(hasCuda());
    const dyn = readelf(["--dyn-syms", "-W"], lib);
    expect(/\bndke?_\w+/.test(dyn)).toBe(false);
  });
});
