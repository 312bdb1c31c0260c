// Self-tests of the device primitives every kernel relies on, built for the GPU and the emulator alike:
// the tensor-core fragment layouts of common.cuh (mma, ldmatrix), warp shuffles and ballot, block barriers
// with static and dynamic shared memory, cp.async. On a GPU they check that common.cuh's documented layouts
// are the hardware's; in the emulator, that the emulator implements the same. Tests: src/cuda/selftest.rs.
#include "common.cuh"

// One warp: A [16][16] and B [16][8] (both row-major bf16, B indexed [k][n]) -> D [16][8] fp32 = C + A*B,
// fragments gathered by hand from the layout comment of nd_mma_bf16_16816.
__global__ void nd_selftest_mma_kernel(const nd_bf16* A, const nd_bf16* B, const float* C, float* D) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  uint32_t a[4], b[2];
  a[0] = nd_pack_bf2(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]);
  a[1] = nd_pack_bf2(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]);
  a[2] = nd_pack_bf2(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]);
  a[3] = nd_pack_bf2(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9]);
  b[0] = nd_pack_bf2(B[(2 * t) * 8 + g], B[(2 * t + 1) * 8 + g]);
  b[1] = nd_pack_bf2(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g]);
  float d[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
  nd_mma_bf16_16816(d, a, b);
  D[g * 8 + 2 * t] = d[0];
  D[g * 8 + 2 * t + 1] = d[1];
  D[(g + 8) * 8 + 2 * t] = d[2];
  D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

NDK_EXPORT int NDK(selftest_mma)(const uint16_t* A, const uint16_t* B, const float* C, float* D, void* stream) {
  ND_LAUNCH(nd_selftest_mma_kernel, 1, 32, 0, stream, A, B, C, D);
  NDK_LAUNCHED();
  return 0;
}

// One warp: four 8x8 bf16 matrices M (global, [4][8][8]) staged in shared memory; out [2][32][4] holds
// each lane's registers of ldmatrix.x4 (out[0]) and ldmatrix.x4.trans (out[1]).
__global__ void nd_selftest_ldmatrix_kernel(const nd_bf16* M, uint32_t* out) {
  __shared__ __align__(16) nd_bf16 s[4 * 8 * 8];
  const int lane = threadIdx.x;
  for (int i = lane; i < 256; i += 32) s[i] = M[i];
  __syncthreads();
  uint32_t r[4];
  const nd_bf16* row = s + (lane >> 3) * 64 + (lane & 7) * 8;
  nd_ldmatrix_x4(r, row);
  for (int j = 0; j < 4; j++) out[lane * 4 + j] = r[j];
  nd_ldmatrix_x4_trans(r, row);
  for (int j = 0; j < 4; j++) out[128 + lane * 4 + j] = r[j];
}

NDK_EXPORT int NDK(selftest_ldmatrix)(const uint16_t* M, uint32_t* out, void* stream) {
  ND_LAUNCH(nd_selftest_ldmatrix_kernel, 1, 32, 0, stream, M, out);
  NDK_LAUNCHED();
  return 0;
}

// Warp collectives on v[i] (blockDim.x threads, any count): out[8*i + ...] =
// [xor-butterfly sum, shfl_down(v,1), shfl_up(v,2), shfl(v, lane^5 within width 8), ballot(v odd),
//  any(v > 100), all(v >= 0), shfl_xor(v, 16)].
__global__ void nd_selftest_warp_kernel(const int* v, int* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int x = i < n ? v[i] : 0;  // every lane takes part in the collectives; only valid ones write
  int s = x;
  for (int m = 16; m > 0; m >>= 1) s += __shfl_xor_sync(0xffffffffu, s, m);
  const int dn = __shfl_down_sync(0xffffffffu, x, 1);
  const int up = __shfl_up_sync(0xffffffffu, x, 2);
  const int w8 = __shfl_sync(0xffffffffu, x, (threadIdx.x & 31) ^ 5, 8);
  const unsigned bal = __ballot_sync(0xffffffffu, x & 1);
  const int any = __any_sync(0xffffffffu, x > 100);
  const int all = __all_sync(0xffffffffu, x >= 0);
  const int x16 = __shfl_xor_sync(0xffffffffu, x, 16);
  if (i < n) {
    int* o = out + 8 * i;
    o[0] = s;
    o[1] = dn;
    o[2] = up;
    o[3] = w8;
    o[4] = (int)bal;
    o[5] = any;
    o[6] = all;
    o[7] = x16;
  }
}

NDK_EXPORT int NDK(selftest_warp)(const int* v, int* out, int n, int block, void* stream) {
  ND_LAUNCH(nd_selftest_warp_kernel, (n + block - 1) / block, block, 0, stream, v, out, n);
  NDK_LAUNCHED();
  return 0;
}

// Block sums of x through static shared memory, a dynamic-shared-memory copy staged by cp.async, and
// __syncthreads_count: out[3*b] = sum of the block's x, out[3*b+1] = sum of the cp.async-staged copy,
// out[3*b+2] = number of positive x in the block. `wait` = 0 skips the cp.async wait (emulator test: the
// staged data must then be stale).
__global__ void nd_selftest_block_kernel(const float* x, float* out, int n, int wait) {
  __shared__ float part[1024];
  ND_DYN_SMEM(float, staged);
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  part[t] = i < n ? x[i] : 0.f;
  if (t % 4 == 0) {
    const bool ok = i + 3 < n;
    nd_cp_async16(staged + t, ok ? x + i : x, ok);
  }
  nd_cp_async_commit();
  if (wait) nd_cp_async_wait<0>();
  const int pos = __syncthreads_count(i < n && x[i] > 0.f);
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) {
      part[t] += part[t + s];
      staged[t] += staged[t + s];
    }
    __syncthreads();
  }
  if (t == 0) {
    out[3 * blockIdx.x] = part[0];
    out[3 * blockIdx.x + 1] = staged[0];
    out[3 * blockIdx.x + 2] = (float)pos;
  }
}

// n must be a multiple of 4 and of `block` (a power of two <= 1024); x 16-byte aligned.
NDK_EXPORT int NDK(selftest_block)(const float* x, float* out, int n, int block, int wait, int smem_extra, void* stream) {
  size_t smem = (size_t)block * sizeof(float) + (size_t)smem_extra;
  if (smem > 48 * 1024 && smem_extra >= 0) ND_SMEM_LIMIT(nd_selftest_block_kernel, smem);
  if (smem_extra < 0) smem = (size_t)block * sizeof(float) + (size_t)(-smem_extra);  // without the opt-in
  ND_LAUNCH(nd_selftest_block_kernel, n / block, block, smem, stream, x, out, n, wait);
  NDK_LAUNCHED();
  return 0;
}

// A warp shuffle after lane 0 of each warp returned: undefined on a GPU, an error in the emulator.
__global__ void nd_selftest_divergent_kernel(int* out) {
  if (threadIdx.x == 0) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}

NDK_EXPORT int NDK(selftest_divergent)(int* out, void* stream) {
  ND_LAUNCH(nd_selftest_divergent_kernel, 1, 32, 0, stream, out);
  NDK_LAUNCHED();
  return 0;
}

// One 16-byte vector load from p (the emulator build traps on a misaligned one, as the GPU faults).
struct __align__(16) nd_selftest_u32x4 {
  uint32_t a, b, c, d;
};
__global__ void nd_selftest_vec16_kernel(const unsigned char* p, uint32_t* out) {
  nd_selftest_u32x4 v = *reinterpret_cast<const nd_selftest_u32x4*>(p);
  out[0] = v.a + v.b + v.c + v.d;
}

NDK_EXPORT int NDK(selftest_vec16)(const unsigned char* p, uint32_t* out, void* stream) {
  ND_LAUNCH(nd_selftest_vec16_kernel, 1, 1, 0, stream, p, out);
  NDK_LAUNCHED();
  return 0;
}

// A missing barrier (a bug on purpose): warp 0 writes dynamic shared memory that warp 1 reads without
// __syncthreads. 64 threads per block; out[32*block + i] = what lane i of warp 1 read.
__global__ void nd_selftest_race_kernel(int* out) {
  ND_DYN_SMEM(int, s);
  const int t = threadIdx.x;
  if (t < 32) s[t] = t + 1;
  else out[32 * blockIdx.x + t - 32] = s[t - 32];
}

NDK_EXPORT int NDK(selftest_race)(int* out, int blocks, void* stream) {
  ND_LAUNCH(nd_selftest_race_kernel, blocks, 64, 32 * sizeof(int), stream, out);
  NDK_LAUNCHED();
  return 0;
}

// A dependency between blocks of one launch (a bug on purpose): block b writes buf[b] and reads
// buf[(b + 1) % gridDim.x] into out[b].
__global__ void nd_selftest_xblock_kernel(int* buf, int* out) {
  if (threadIdx.x != 0) return;
  buf[blockIdx.x] = 10 + (int)blockIdx.x;
  out[blockIdx.x] = buf[(blockIdx.x + 1) % gridDim.x];
}

NDK_EXPORT int NDK(selftest_xblock)(int* buf, int* out, int blocks, void* stream) {
  ND_LAUNCH(nd_selftest_xblock_kernel, blocks, 32, 0, stream, buf, out);
  NDK_LAUNCHED();
  return 0;
}
