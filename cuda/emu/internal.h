// Internals shared by the emulator's two files: emu.cpp (scheduler, launches, errors, memory) and
// collectives.cpp (barriers, warp exchange, mma, ldmatrix, cp.async). See emu.h for the model.
#pragma once
#include <string>
#include <vector>

#include "emu.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace nd_emu {
namespace detail {

enum State { RUN, WAIT_WARP, WAIT_BLOCK, DONE };

struct Pending {
  unsigned char* dst;
  unsigned char data[16];
  uint64_t group;
};

struct Fiber {
  void* sp = nullptr;
  unsigned char* stack = nullptr;
  uint3 tid{0, 0, 0};
  int lane = 0, warp = 0;
  State state = DONE;
  uint64_t coll = 0;  // collectives passed (same sequence on every lane of a warp)
  std::vector<Pending> pending;
  uint64_t committed = 0;  // cp.async groups committed so far
#if !defined(__x86_64__)
  ucontext_t uc;
#endif
};

struct Bank {
  uint64_t round = ~0ull;
  uint64_t slot[32];
  const unsigned char* addr[32];
  uint32_t a[32][4];
  uint32_t b[32][2];
  float d[32][4];
  bool mma_done = false;
  float out[16][8];
};

struct Warp {
  Bank bank[2];
  int lanes = 0;
};

struct Exec {
  std::vector<Fiber> fibers;  // grows to the largest block seen and never shrinks (each owns a mapped stack)
  size_t nthreads = 0;        // threads of the current block: fibers[0..nthreads)
  std::vector<Warp> warps;
  void* sched_sp = nullptr;
#if !defined(__x86_64__)
  ucontext_t sched_uc;
#endif
  Fiber* cur = nullptr;
  void (*thunk)(void*) = nullptr;
  void* ctx = nullptr;
  bool failed = false;
  std::string msg;
  std::vector<unsigned char> smem;
  int block_count_acc = 0;
  int block_count_result = 0;
};

extern thread_local Exec* g_exec;

// The running fiber (aborts outside a kernel).
Fiber* self();
// Switch from fiber f back to the scheduler.
void to_sched(Fiber* f);
// The bank of scratch for this lane's next warp collective (resets it for a new round).
Bank& warp_arrive(Fiber* f);
// Wait at the warp barrier of that collective.
void warp_wait(Fiber* f);

}  // namespace detail
}  // namespace nd_emu
