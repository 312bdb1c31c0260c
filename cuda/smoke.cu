// The smoke kernel, built for the GPU and the emulator: y = a*x + y. On a GPU it proves that code for this
// architecture is in the binary; in the emulator it is the simplest end-to-end launch.
#include "common.cuh"

__global__ void ndk_saxpy_kernel(float a, const float* __restrict__ x, float* __restrict__ y, uint64_t n) {
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x)
    y[i] = a * x[i] + y[i];
}

NDK_EXPORT int NDK(saxpy)(float a, const float* x, float* y, uint64_t n, void* stream) {
  if (n == 0) return 0;
  unsigned blocks = (unsigned)std::min<uint64_t>((n + 255) / 256, 65535);
  ND_LAUNCH(ndk_saxpy_kernel, blocks, 256, 0, stream, a, x, y, n);
  NDK_LAUNCHED();
  return 0;
}
