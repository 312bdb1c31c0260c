// One typed wrapper per native op, one file per op family (the same families as crates/nndet-core/src/ffi/).
export * from "./base";
export * from "./prep";
export * from "./engine";
export * from "./conv";
export * from "./detect";
export * from "./gpu";
