// The native boundary's public surface: everything outside src/native/ imports from here.
export { ABI_VERSION, loadedLibraryPath, resolveLibrary } from "./lib";
export { NativeError, Status, statusName } from "./errors";
export * from "./ops/index";
export * from "./tensor";
