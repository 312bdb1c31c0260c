// Shared definitions for nndet's CUDA kernels and launchers.
// Every launcher is `extern "C" int ndk_<op>(...)` and returns a cudaError_t as int (0 = success); it never
// exits or throws. The Rust side turns a non-zero code into Status::Cuda with cudaGetErrorString's text.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#define NDK_EXPORT extern "C" __attribute__((visibility("default")))

// Return the error of a CUDA runtime call, if any.
#define NDK_TRY(call)                         \
  do {                                        \
    cudaError_t _e = (call);                  \
    if (_e != cudaSuccess) return (int)_e;    \
  } while (0)

// After a kernel launch: report launch errors.
#define NDK_LAUNCHED() NDK_TRY(cudaGetLastError())
