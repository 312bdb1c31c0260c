// One typed wrapper per native op, one file per op family (the same families as crates/nndet-core/src/ffi/).
export * from "./base";
export * from "./detect";
