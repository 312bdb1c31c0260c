// A CPU emulator of the CUDA execution model, enough to run nndet's kernels unchanged (see ../common.cuh):
// kernel files are compiled by the host C++ compiler with -DND_EMU and this header. Used by the Rust tests
// on machines without a GPU, and as the `emu` device backend.
//
// Model: a launch runs its blocks one after another on the calling OS thread. Each CUDA thread of a block
// is a fiber with its own stack (its registers and locals); fibers switch only at barriers, so memory
// operations between barriers are atomic and race-free by construction. `__shared__` variables are
// thread_local statics (one block runs at a time per OS thread), dynamic shared memory is a per-OS-thread
// buffer filled with 0xFF (NaN) before each block, so reads of unwritten shared memory show up.
// Checked, as the GPU would fault or misbehave: block/grid limits, dynamic shared memory above 48 KiB
// without ND_SMEM_LIMIT or above sm_80's 163 KiB, warp collectives reached by only some live lanes
// (a lane that returned early), __syncthreads deadlocks, misaligned ldmatrix / cp.async addresses.
// cp.async copies land in shared memory only at the matching wait, so a missing wait reads stale data.
// Threads cannot interleave between barriers, but the order varies (warps and lanes reversed in some
// blocks), so a missing barrier shows as unwritten data; kernels are built with the alignment sanitizer in
// trap mode, so a misaligned vector access kills the process as it faults on the GPU.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __align__(n) __attribute__((aligned(n)))

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
static constexpr int warpSize = 32;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
typedef void* cudaStream_t;

namespace nd_emu {
extern thread_local uint3 t_tid;
extern thread_local uint3 t_bid;
extern thread_local dim3 t_bdim;
extern thread_local dim3 t_gdim;

// Run `thunk(ctx)` as every thread of a grid; errors become the sticky launch error.
void run_grid(dim3 grid, dim3 block, size_t smem, const void* kernel, void (*thunk)(void*), void* ctx);
unsigned char* dyn_smem();
cudaError_t set_smem_limit(const void* kernel, int bytes);
// "Device" memory: host memory with guard zones around each allocation, checked after every launch and at
// every synchronize and free, so a write outside an allocation is reported (naming the launch) instead of
// corrupting the host heap.
void* dev_alloc(size_t bytes);
bool dev_free(void* p);
bool check_guards(const char* when);
cudaError_t take_error();
cudaError_t peek_error();
const char* error_string(int code);
// Stop the launch with an error (from inside a kernel or the emulator).
[[noreturn]] void fail(const char* what);

// collectives (all live lanes of the warp / threads of the block take part)
void sync_block();
void sync_warp();
uint64_t warp_exchange(uint64_t v, int src_lane);  // deposit v, return the value deposited by src_lane
uint32_t warp_ballot(bool pred);
int block_count(bool pred);
int lane_id();
void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]);
void ldmatrix_x4(uint32_t r[4], const void* row_addr, bool trans);
void cp_async16(void* smem, const void* gmem, bool pred);
void cp_async_commit();
void cp_async_wait(int n);

template <class... P, class... A>
void launch(void (*k)(P...), dim3 grid, dim3 block, size_t smem, A&&... a) {
  using Args = std::tuple<std::decay_t<P>...>;
  Args args(std::forward<A>(a)...);
  struct Ctx {
    void (*k)(P...);
    Args* args;
  } c{k, &args};
  run_grid(grid, block, smem, (const void*)k, [](void* p) {
    Ctx* c = static_cast<Ctx*>(p);
    Args local = *c->args;  // each thread gets its own copy of the by-value parameters
    std::apply(c->k, local);
  }, &c);
}

template <class T>
static inline T shfl_bits(T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type wider than 8 bytes");
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  u = warp_exchange(u, src);
  T r;
  std::memcpy(&r, &u, sizeof(T));
  return r;
}
}  // namespace nd_emu

#define threadIdx (::nd_emu::t_tid)
#define blockIdx (::nd_emu::t_bid)
#define blockDim (::nd_emu::t_bdim)
#define gridDim (::nd_emu::t_gdim)

static inline void __syncthreads() { ::nd_emu::sync_block(); }
static inline int __syncthreads_count(int p) { return ::nd_emu::block_count(p != 0); }
static inline int __syncthreads_or(int p) { return ::nd_emu::block_count(p != 0) > 0; }
static inline int __syncthreads_and(int p) { return ::nd_emu::block_count(p == 0) == 0; }
static inline void __syncwarp(unsigned = 0xffffffffu) { ::nd_emu::sync_warp(); }
static inline void __threadfence() {}
static inline void __threadfence_block() {}

// NOTE: masks are accepted but every live lane of the warp must take part (nndet's kernels use full masks).
template <class T>
static inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
  int l = ::nd_emu::lane_id();
  return ::nd_emu::shfl_bits(v, (l & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
static inline T __shfl_xor_sync(unsigned, T v, int m, int width = 32) {
  int l = ::nd_emu::lane_id();
  int s = l ^ m;
  return ::nd_emu::shfl_bits(v, ((s & ~(width - 1)) == (l & ~(width - 1))) ? s : l);
}
template <class T>
static inline T __shfl_down_sync(unsigned, T v, unsigned d, int width = 32) {
  int l = ::nd_emu::lane_id();
  int s = l + (int)d;
  return ::nd_emu::shfl_bits(v, ((s & (width - 1)) >= (int)d && (s & ~(width - 1)) == (l & ~(width - 1))) ? s : l);
}
template <class T>
static inline T __shfl_up_sync(unsigned, T v, unsigned d, int width = 32) {
  int l = ::nd_emu::lane_id();
  int s = l - (int)d;
  return ::nd_emu::shfl_bits(v, ((l & (width - 1)) >= (int)d) ? s : l);
}
static inline unsigned __ballot_sync(unsigned, int p) { return ::nd_emu::warp_ballot(p != 0); }
static inline int __any_sync(unsigned, int p) { return ::nd_emu::warp_ballot(p != 0) != 0; }
static inline int __all_sync(unsigned m, int p) { return ::nd_emu::warp_ballot(p == 0) == 0; }
static inline unsigned __activemask() { return 0xffffffffu; }

// Atomics: blocks and fibers never run concurrently, so plain read-modify-write is atomic here.
template <class T>
static inline T atomicAdd(T* p, T v) {
  T o = *p;
  *p = o + v;
  return o;
}
template <class T>
static inline T atomicMax(T* p, T v) {
  T o = *p;
  *p = std::max(o, v);
  return o;
}
template <class T>
static inline T atomicMin(T* p, T v) {
  T o = *p;
  *p = std::min(o, v);
  return o;
}
template <class T>
static inline T atomicExch(T* p, T v) {
  T o = *p;
  *p = v;
  return o;
}
template <class T>
static inline T atomicCAS(T* p, T cmp, T v) {
  T o = *p;
  if (o == cmp) *p = v;
  return o;
}
template <class T>
static inline T atomicOr(T* p, T v) {
  T o = *p;
  *p = o | v;
  return o;
}
template <class T>
static inline T atomicAnd(T* p, T v) {
  T o = *p;
  *p = o & v;
  return o;
}

// CUDA's integer and float min/max overloads
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }

static inline int __popc(unsigned v) { return __builtin_popcount(v); }
static inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
static inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz((unsigned)v); }
static inline int __clzll(long long v) { return v == 0 ? 64 : __builtin_clzll((unsigned long long)v); }
static inline int __ffs(int v) { return __builtin_ffs(v); }
static inline int __ffsll(long long v) { return __builtin_ffsll(v); }
static inline unsigned __brev(unsigned v) {
  unsigned r = 0;
  for (int i = 0; i < 32; i++) r |= ((v >> i) & 1u) << (31 - i);
  return r;
}
static inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
static inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
static inline float __int_as_float(int32_t u) { return __uint_as_float((uint32_t)u); }
static inline int32_t __float_as_int(float f) { return (int32_t)__float_as_uint(f); }
static inline float __fdividef(float a, float b) { return a / b; }
// glibc declares its own __expf/__logf: map CUDA's fast intrinsics onto the libm functions by name
#define __expf(x) expf(x)
#define __logf(x) logf(x)
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static inline float __fsqrt_rn(float x) { return std::sqrt(x); }
static inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
template <class T>
static inline T __ldg(const T* p) {
  return *p;
}
// float math (expf, sqrtf, fmaxf, ...) comes from <cmath>'s global C functions.

// runtime subset used by launchers
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t s = nullptr);
cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t st = nullptr);
cudaError_t cudaMemset(void* p, int v, size_t n);
cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind k);
template <class F>
static inline cudaError_t cudaFuncSetAttribute(F* k, cudaFuncAttribute, int v) {
  return ::nd_emu::set_smem_limit((const void*)k, v);
}
