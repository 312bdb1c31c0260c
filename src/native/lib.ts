// Finds and opens the native library, checks its ABI version, and exposes the raw symbols.
// This folder (src/native/) is the only code that imports bun:ffi.
//
// Where the library comes from, first match wins:
//   1. NDET_LIB=/path/to/libnndet_core.so (override, e.g. the stub build in tests);
//   2. the file embedded in the compiled binary (scripts/build.sh), or in a dev run the dev build
//      build/lib/libnndet_core.so (copied there by scripts/build-native.sh) that the same import resolves to.
import { dlopen, type Library } from "bun:ffi";
import { existsSync } from "node:fs";
import { symbols, type Symbols } from "./symbols/index";

/** Must equal crates/nndet-core/src/lib.rs ABI_VERSION. */
export const ABI_VERSION = 3;

let lib: Library<Symbols> | null = null;
let libPath = "";

function embeddedPath(): string | null {
  try {
    // A static specifier, so `bun build --compile` embeds the file; in a dev run it is the dev build.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require("./embedded") as { default: string }).default;
  } catch {
    return null;
  }
}

/** The path the library is (or would be) loaded from, and why. */
export function resolveLibrary(): { path: string; source: "NDET_LIB" | "embedded" | "dev build" } {
  const override = process.env.NDET_LIB;
  if (override) {
    if (!existsSync(override)) throw new Error(`NDET_LIB=${override}: no such file`);
    return { path: override, source: "NDET_LIB" };
  }
  const p = embeddedPath();
  if (p && (p.startsWith("/$bunfs/") || existsSync(p))) {
    return { path: p, source: p.startsWith("/$bunfs/") ? "embedded" : "dev build" };
  }
  throw new Error(
    "the native library libnndet_core.so was not found: build it with `bun run build:native` " +
      "(or set NDET_LIB to its path)",
  );
}

/** The opened library's symbols (opened on first use). */
export function native(): Library<Symbols>["symbols"] {
  if (lib) return lib.symbols;
  const { path } = resolveLibrary();
  let opened: Library<Symbols>;
  try {
    opened = dlopen(path, symbols);
  } catch (e) {
    throw new Error(`cannot load the native library ${path}: ${(e as Error).message}`);
  }
  const abi = opened.symbols.nd_abi_version();
  if (abi !== ABI_VERSION) {
    opened.close();
    throw new Error(
      `the native library ${path} has ABI version ${abi} but this nndet expects ${ABI_VERSION}: ` +
        "rebuild it (bun run build:native)",
    );
  }
  lib = opened;
  libPath = path;
  return opened.symbols;
}

export function loadedLibraryPath(): string {
  native();
  return libPath;
}

const errBuf = new Uint8Array(4096);

/** This thread's last native error message. */
export function lastError(): string {
  const n = native().nd_last_error(errBuf, errBuf.length);
  const len = Math.min(n, errBuf.length - 1);
  return new TextDecoder().decode(errBuf.subarray(0, Math.max(0, len)));
}
