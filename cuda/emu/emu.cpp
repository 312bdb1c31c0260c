// The CUDA emulator's scheduler, launches, errors and device memory (see emu.h for the model and what is
// checked; collectives.cpp has the barriers and warp-wide ops).
//
// Scheduling: per block, warp by warp: every runnable lane of a warp runs until it finishes or waits at a
// barrier; when all live lanes of the warp wait at a warp collective they are released and the warp goes
// on; when it stops at __syncthreads (or finishes) the next warp runs. When every live thread of the block
// waits at __syncthreads they are all released. Anything else is a deadlock (reported, not hung).
// Warp collectives exchange through two banks of per-warp scratch used alternately, so one barrier each
// suffices: a lane cannot deposit into a bank again before every lane has read it (it would have to pass
// the next collective's barrier first).
#include "internal.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace nd_emu {

thread_local uint3 t_tid;
thread_local uint3 t_bid;
thread_local dim3 t_bdim;
thread_local dim3 t_gdim;

namespace detail {
thread_local Exec* g_exec = nullptr;
}  // namespace detail
using namespace detail;

namespace {

constexpr size_t kStack = 256 * 1024;
constexpr size_t kSmemMax = 166912;  // sm_80's opt-in maximum per block (sm_90 allows more)
constexpr size_t kSmemDefault = 48 * 1024;

thread_local cudaError_t g_error = cudaSuccess;
thread_local std::string g_error_msg;
std::mutex g_limits_mu;
std::map<const void*, int> g_limits;

constexpr size_t kGuard = 256;  // bytes of guard zone on each side (keeps cudaMalloc's 256-byte alignment)
constexpr unsigned char kGuardByte = 0xA5;
std::mutex g_allocs_mu;
std::map<unsigned char*, size_t> g_allocs;  // user pointer -> bytes

// The first allocation whose guard zone was written, as a message; empty when all are intact.
std::string guard_violation() {
  std::lock_guard<std::mutex> g(g_allocs_mu);
  for (auto& [p, n] : g_allocs) {
    for (size_t i = 0; i < kGuard; i++) {
      const bool before = p[-(ptrdiff_t)kGuard + (ptrdiff_t)i] != kGuardByte, after = p[n + i] != kGuardByte;
      if (before || after) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "device memory written %zu bytes %s the allocation of %zu bytes at %p",
                      before ? kGuard - i : i + 1, before ? "before" : "past the end of", n, (void*)p);
        // repair the zone so one stray write is reported once
        std::memset(p - kGuard, kGuardByte, kGuard);
        std::memset(p + n, kGuardByte, kGuard);
        return buf;
      }
    }
  }
  return {};
}

#if defined(__x86_64__)
// nd_emu_switch(void** save_sp, void* to_sp): save callee-saved registers, MXCSR and the x87 control word
// on this stack, store the stack pointer in *save_sp, switch to to_sp and restore from there.
extern "C" void nd_emu_switch(void** save, void* to);
asm(R"(
.text
.p2align 4
.globl nd_emu_switch
.hidden nd_emu_switch
.type nd_emu_switch,@function
nd_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size nd_emu_switch, .-nd_emu_switch
)");
#endif

[[noreturn]] void fiber_main();

#if defined(__x86_64__)
extern "C" void nd_emu_entry() { fiber_main(); }
#endif

}  // namespace

namespace detail {
void to_sched(Fiber* f) {
#if defined(__x86_64__)
  nd_emu_switch(&f->sp, g_exec->sched_sp);
#else
  swapcontext(&f->uc, &g_exec->sched_uc);
#endif
}
}  // namespace detail

namespace {

void to_fiber(Fiber* f) {
  Exec* e = g_exec;
  e->cur = f;
  t_tid = f->tid;
#if defined(__x86_64__)
  nd_emu_switch(&e->sched_sp, f->sp);
#else
  swapcontext(&e->sched_uc, &f->uc);
#endif
  e->cur = nullptr;
}

[[noreturn]] void fiber_main() {
  Exec* e = g_exec;
  e->thunk(e->ctx);
  Fiber* f = e->cur;
  f->state = DONE;
  to_sched(f);
  std::abort();  // a finished fiber is never resumed
}

// Map the fiber's stack once (with a guard page, so an overflow faults instead of corrupting); false on failure.
bool map_stack(Fiber& f) {
  if (f.stack) return true;
  void* m = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return false;
  mprotect(m, 4096, PROT_NONE);
  f.stack = static_cast<unsigned char*>(m);
  return true;
}

void init_fiber(Fiber& f) {
#if defined(__x86_64__)
  // Initial frame, as nd_emu_switch expects to pop it: [mxcsr|fpucw] r15 r14 r13 r12 rbx rbp, then the
  // "return address" nd_emu_entry (16-byte aligned slot, so the entry sees rsp = 8 mod 16 as after a call).
  uint64_t* top = reinterpret_cast<uint64_t*>(f.stack + kStack);
  top -= 2;
  top[0] = reinterpret_cast<uint64_t>(&nd_emu_entry);
  top[1] = 0;
  uint64_t* sp = top - 7;
  for (int i = 1; i < 7; i++) sp[i] = 0;
  uint32_t csr[2];
  asm volatile("stmxcsr %0" : "=m"(csr[0]));
  asm volatile("fnstcw %0" : "=m"(csr[1]));
  std::memcpy(&sp[0], csr, 8);
  f.sp = sp;
#else
  getcontext(&f.uc);
  f.uc.uc_stack.ss_sp = f.stack + 4096;
  f.uc.uc_stack.ss_size = kStack - 4096;
  f.uc.uc_link = nullptr;
  makecontext(&f.uc, (void (*)())fiber_main, 0);
#endif
  f.state = RUN;
  f.coll = 0;
  f.pending.clear();
  f.committed = 0;
}

}  // namespace

namespace detail {
Fiber* self() {
  Exec* e = g_exec;
  if (!e || !e->cur) {
    std::fprintf(stderr, "nd_emu: a device built-in was called outside a kernel\n");
    std::abort();
  }
  return e->cur;
}

// Wait at the warp barrier; returns the bank of this collective.
Bank& warp_arrive(Fiber* f) {
  Warp& w = g_exec->warps[f->warp];
  Bank& b = w.bank[f->coll & 1];
  if (b.round != f->coll) {
    b.round = f->coll;
    b.mma_done = false;
  }
  return b;
}

void warp_wait(Fiber* f) {
  f->state = WAIT_WARP;
  to_sched(f);
  f->coll++;
}

}  // namespace detail

namespace {
void set_error(cudaError_t e, const std::string& m) {
  if (g_error == cudaSuccess) {
    g_error = e;
    g_error_msg = m;
  }
}

// Run one block to completion; false on failure (message in e->msg).
// NOTE: the order varies with the block (warps in reverse order in odd blocks, lanes in reverse order where
// block + warp is odd), so a kernel that reads shared memory another warp or lane writes without a barrier
// sees the write missing in some blocks: the emulator cannot interleave threads, but it can reorder them.
bool run_block(Exec* e, uint64_t block) {
  const size_t n = e->nthreads;
  const size_t nw = e->warps.size();
  for (;;) {
    for (size_t wi = 0; wi < nw && !e->failed; wi++) {
      const size_t w = (block & 1) ? nw - 1 - wi : wi;
      const size_t lo = w * 32, hi = std::min(n, lo + 32);
      const bool rev = ((block + w) & 1) != 0;
      for (;;) {
        for (size_t k = 0; k < hi - lo && !e->failed; k++) {
          const size_t i = rev ? hi - 1 - k : lo + k;
          if (e->fibers[i].state == RUN) to_fiber(&e->fibers[i]);
        }
        if (e->failed) break;
        int at_warp = 0, at_block = 0, done = 0;
        for (size_t i = lo; i < hi; i++) {
          State s = e->fibers[i].state;
          at_warp += s == WAIT_WARP;
          at_block += s == WAIT_BLOCK;
          done += s == DONE;
        }
        if (at_warp == 0) break;
        if (at_block > 0 || done > 0) {
          char buf[200];
          std::snprintf(buf, sizeof buf,
                        "warp %zu: %d lanes wait at a warp collective (shuffle/ballot/mma/ldmatrix) while %d lanes "
                        "are at __syncthreads and %d have exited",
                        w, at_warp, at_block, done);
          e->failed = true;
          e->msg = buf;
          break;
        }
        for (size_t i = lo; i < hi; i++) e->fibers[i].state = RUN;
      }
    }
    if (e->failed) return false;
    size_t at_block = 0, done = 0;
    for (size_t i = 0; i < n; i++) {
      at_block += e->fibers[i].state == WAIT_BLOCK;
      done += e->fibers[i].state == DONE;
    }
    if (done == n) return true;
    if (at_block + done != n) {
      e->failed = true;
      e->msg = "deadlock: threads neither finished nor all at __syncthreads";
      return false;
    }
    e->block_count_result = e->block_count_acc;
    e->block_count_acc = 0;
    for (size_t i = 0; i < n; i++)
      if (e->fibers[i].state == WAIT_BLOCK) e->fibers[i].state = RUN;
  }
}

}  // namespace

void run_grid(dim3 grid, dim3 block, size_t smem, const void* kernel, void (*thunk)(void*), void* ctx) {
  if (g_exec) {
    set_error(cudaErrorLaunchFailure, "kernel launched from inside a kernel (no dynamic parallelism)");
    return;
  }
  const uint64_t threads = (uint64_t)block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "invalid launch configuration: grid (%u,%u,%u) block (%u,%u,%u)", grid.x, grid.y,
                  grid.z, block.x, block.y, block.z);
    set_error(cudaErrorInvalidConfiguration, buf);
    return;
  }
  size_t limit = kSmemDefault;
  {
    std::lock_guard<std::mutex> g(g_limits_mu);
    auto it = g_limits.find(kernel);
    if (it != g_limits.end()) limit = (size_t)it->second;
  }
  if (smem > limit) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%zu bytes of dynamic shared memory exceed the kernel's limit of %zu (ND_SMEM_LIMIT)",
                  smem, limit);
    set_error(cudaErrorInvalidValue, buf);
    return;
  }
  thread_local Exec exec;
  Exec* e = &exec;
  if (e->fibers.size() < threads) e->fibers.resize(threads);
  for (uint64_t i = 0; i < threads; i++)
    if (!map_stack(e->fibers[i])) {
      set_error(cudaErrorMemoryAllocation, "the emulator cannot map a fiber stack");
      return;
    }
  e->nthreads = threads;
  e->warps.assign((threads + 31) / 32, Warp{});
  e->thunk = thunk;
  e->ctx = ctx;
  e->failed = false;
  e->msg.clear();
  if (e->smem.size() < smem + 16) e->smem.resize(smem + 16);
  t_bdim = block;
  t_gdim = grid;
  g_exec = e;
  // NOTE: blocks run one at a time in a scrambled order (reversed k * step mod N, step coprime to N; plain
  // reverse order for small grids), so a kernel that reads what another block of the same launch writes
  // sees it missing for some pairs.
  const uint64_t nblocks = (uint64_t)grid.x * grid.y * grid.z;
  uint64_t step = std::max<uint64_t>(1, nblocks * 5 / 8);
  while (std::gcd(step, nblocks) != 1) step--;
  for (uint64_t k = 0; k < nblocks && !e->failed; k++) {
    const uint64_t lin = nblocks - 1 - (k * step) % nblocks;
    const unsigned bx = (unsigned)(lin % grid.x), by = (unsigned)((lin / grid.x) % grid.y), bz = (unsigned)(lin / ((uint64_t)grid.x * grid.y));
    t_bid = uint3{bx, by, bz};
    std::memset(e->smem.data(), 0xff, smem);
    for (auto& w : e->warps) w = Warp{};
    uint64_t i = 0;
    for (unsigned z = 0; z < block.z; z++)
      for (unsigned y = 0; y < block.y; y++)
        for (unsigned x = 0; x < block.x; x++, i++) {
          Fiber& f = e->fibers[i];
          init_fiber(f);
          f.tid = uint3{x, y, z};
          f.lane = (int)(i & 31);
          f.warp = (int)(i >> 5);
        }
    e->block_count_acc = 0;
    run_block(e, lin);
  }
  g_exec = nullptr;
  if (!e->failed) {
    std::string v = guard_violation();
    if (!v.empty()) {
      e->failed = true;
      e->msg = v + " by this launch";
    }
  }
  if (e->failed) {
    char buf[120];
    std::snprintf(buf, sizeof buf, " (block (%u,%u,%u))", t_bid.x, t_bid.y, t_bid.z);
    set_error(cudaErrorLaunchFailure, e->msg + buf);
  }
}

void* dev_alloc(size_t bytes) {
  unsigned char* base = nullptr;
  if (posix_memalign(reinterpret_cast<void**>(&base), kGuard, bytes + 2 * kGuard) != 0) return nullptr;
  std::memset(base, kGuardByte, kGuard);
  std::memset(base + kGuard + bytes, kGuardByte, kGuard);
  std::lock_guard<std::mutex> g(g_allocs_mu);
  g_allocs[base + kGuard] = bytes;
  return base + kGuard;
}

bool dev_free(void* p) {
  std::string v = guard_violation();
  if (!v.empty()) set_error(cudaErrorLaunchFailure, v);
  std::lock_guard<std::mutex> g(g_allocs_mu);
  auto it = g_allocs.find(static_cast<unsigned char*>(p));
  if (it == g_allocs.end()) return false;
  g_allocs.erase(it);
  std::free(static_cast<unsigned char*>(p) - kGuard);
  return v.empty();
}

bool check_guards(const char* when) {
  std::string v = guard_violation();
  if (v.empty()) return true;
  set_error(cudaErrorLaunchFailure, v + " (found at " + when + ")");
  return false;
}

unsigned char* dyn_smem() {
  self();
  return reinterpret_cast<unsigned char*>(((uintptr_t)g_exec->smem.data() + 15) & ~(uintptr_t)15);
}

cudaError_t set_smem_limit(const void* kernel, int bytes) {
  if (bytes < 0 || (size_t)bytes > kSmemMax) {
    set_error(cudaErrorInvalidValue, "dynamic shared memory limit above sm_80's 163 KiB");
    return cudaErrorInvalidValue;
  }
  std::lock_guard<std::mutex> g(g_limits_mu);
  g_limits[kernel] = bytes;
  return cudaSuccess;
}

cudaError_t take_error() {
  cudaError_t e = g_error;
  g_error = cudaSuccess;
  return e;
}
cudaError_t peek_error() { return g_error; }

const char* error_string(int code) {
  thread_local std::string s;
  switch (code) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: s = "invalid argument"; break;
    case cudaErrorMemoryAllocation: s = "out of memory"; break;
    case cudaErrorInvalidConfiguration: s = "invalid configuration argument"; break;
    case cudaErrorLaunchFailure: s = "unspecified launch failure"; break;
    default: s = "unknown error"; break;
  }
  if (!g_error_msg.empty()) s += " [emulator: " + g_error_msg + "]";
  return s.c_str();
}

void fail(const char* what) {
  Exec* e = g_exec;
  if (!e || !e->cur) {
    set_error(cudaErrorLaunchFailure, what);
    std::fprintf(stderr, "nd_emu: %s\n", what);
    std::abort();
  }
  e->failed = true;
  e->msg = what;
  Fiber* f = e->cur;
  f->state = DONE;
  to_sched(f);
  std::abort();
}

}  // namespace nd_emu

cudaError_t cudaGetLastError() { return nd_emu::take_error(); }
cudaError_t cudaPeekAtLastError() { return nd_emu::peek_error(); }
const char* cudaGetErrorString(cudaError_t e) { return nd_emu::error_string((int)e); }
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) {
  std::memset(p, v, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t n) { return cudaMemsetAsync(p, v, n, nullptr); }
cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind k) { return cudaMemcpyAsync(d, s, n, k, nullptr); }
