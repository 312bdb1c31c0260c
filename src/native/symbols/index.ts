// The C ABI of crates/nndet-core as bun:ffi sees it: one table per op family (crates/nndet-core/src/ffi/),
// merged here. A test compares the merged table with the symbols the built library exports (nm -D), so
// neither side drifts. Pointers are passed as TypedArrays (never a ptr() kept across calls); u64 lengths as
// numbers. Register a new family with one import and one spread.
import { baseSymbols } from "./base";
import { convSymbols } from "./conv";
import { detectSymbols } from "./detect";
import { gpuSymbols } from "./gpu";
import { engineSymbols } from "./engine";
import { prepSymbols } from "./prep";

export const symbols = {
  ...baseSymbols,
  ...convSymbols,
  ...detectSymbols,
  ...engineSymbols,
  ...gpuSymbols,
  ...prepSymbols,
} as const;

export type Symbols = typeof symbols;
