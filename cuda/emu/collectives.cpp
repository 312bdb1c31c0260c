// The emulator's collectives (see emu.h, and emu.cpp for the scheduler): block barriers, warp exchanges
// and ballots, and the warp-wide tensor-core ops (mma.sync m16n8k16 bf16, ldmatrix x4) computed from every
// lane's fragments, plus cp.async with its copies delayed to the matching wait.
#include <cstring>

#include "internal.h"

namespace nd_emu {
using namespace detail;

void sync_block() {
  Fiber* f = self();
  f->state = WAIT_BLOCK;
  to_sched(f);
}

void sync_warp() {
  Fiber* f = self();
  warp_arrive(f);
  warp_wait(f);
}

int lane_id() { return self()->lane; }

uint64_t warp_exchange(uint64_t v, int src) {
  Fiber* f = self();
  Bank& b = warp_arrive(f);
  b.slot[f->lane] = v;
  warp_wait(f);
  const int lanes = std::min<int>(32, (int)g_exec->nthreads - f->warp * 32);
  if (src < 0 || src >= lanes) src = f->lane;  // as the GPU: an out-of-range source reads one's own value
  return b.slot[src];
}

uint32_t warp_ballot(bool pred) {
  Fiber* f = self();
  Bank& b = warp_arrive(f);
  b.slot[f->lane] = pred;
  warp_wait(f);
  const int lanes = std::min<int>(32, (int)g_exec->nthreads - f->warp * 32);
  uint32_t r = 0;
  for (int i = 0; i < lanes; i++) r |= (b.slot[i] ? 1u : 0u) << i;
  return r;
}

int block_count(bool pred) {
  Fiber* f = self();
  g_exec->block_count_acc += pred;
  f->state = WAIT_BLOCK;
  to_sched(f);
  return g_exec->block_count_result;
}

static inline float bf(uint32_t w, int hi) { return __uint_as_float(hi ? (w & 0xffff0000u) : (w << 16)); }

void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  Fiber* f = self();
  if (g_exec->nthreads < (size_t)(f->warp + 1) * 32) fail("mma.sync in a warp with fewer than 32 threads");
  Bank& k = warp_arrive(f);
  std::memcpy(k.a[f->lane], a, 16);
  std::memcpy(k.b[f->lane], b, 8);
  std::memcpy(k.d[f->lane], d, 16);
  warp_wait(f);
  if (!k.mma_done) {
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
      const int g = l >> 2, t = l & 3;
      for (int h = 0; h < 2; h++) {
        A[g][2 * t + h] = bf(k.a[l][0], h);
        A[g + 8][2 * t + h] = bf(k.a[l][1], h);
        A[g][2 * t + 8 + h] = bf(k.a[l][2], h);
        A[g + 8][2 * t + 8 + h] = bf(k.a[l][3], h);
        B[2 * t + h][g] = bf(k.b[l][0], h);
        B[2 * t + 8 + h][g] = bf(k.b[l][1], h);
      }
    }
    for (int l = 0; l < 32; l++) {
      const int g = l >> 2, t = l & 3;
      k.out[g][2 * t] = k.d[l][0];
      k.out[g][2 * t + 1] = k.d[l][1];
      k.out[g + 8][2 * t] = k.d[l][2];
      k.out[g + 8][2 * t + 1] = k.d[l][3];
    }
    for (int i = 0; i < 16; i++)
      for (int j = 0; j < 8; j++) {
        float s = k.out[i][j];
        for (int q = 0; q < 16; q++) s += A[i][q] * B[q][j];
        k.out[i][j] = s;
      }
    k.mma_done = true;
  }
  const int g = f->lane >> 2, t = f->lane & 3;
  d[0] = k.out[g][2 * t];
  d[1] = k.out[g][2 * t + 1];
  d[2] = k.out[g + 8][2 * t];
  d[3] = k.out[g + 8][2 * t + 1];
}

void ldmatrix_x4(uint32_t r[4], const void* row_addr, bool trans) {
  Fiber* f = self();
  if (g_exec->nthreads < (size_t)(f->warp + 1) * 32) fail("ldmatrix in a warp with fewer than 32 threads");
  if ((uintptr_t)row_addr & 15) fail("ldmatrix row address not 16-byte aligned");
  Bank& k = warp_arrive(f);
  k.addr[f->lane] = static_cast<const unsigned char*>(row_addr);
  warp_wait(f);
  const int g = f->lane >> 2, t = f->lane & 3;
  for (int j = 0; j < 4; j++) {
    if (!trans) {
      std::memcpy(&r[j], k.addr[8 * j + g] + 4 * t, 4);
    } else {
      uint16_t lo, hi;
      std::memcpy(&lo, k.addr[8 * j + 2 * t] + 2 * g, 2);
      std::memcpy(&hi, k.addr[8 * j + 2 * t + 1] + 2 * g, 2);
      r[j] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
  }
}

void cp_async16(void* smem, const void* gmem, bool pred) {
  Fiber* f = self();
  if (((uintptr_t)smem & 15) || (pred && ((uintptr_t)gmem & 15))) fail("cp.async of 16 bytes with a misaligned address");
  Pending p;
  p.dst = static_cast<unsigned char*>(smem);
  if (pred)
    std::memcpy(p.data, gmem, 16);
  else
    std::memset(p.data, 0, 16);
  p.group = f->committed;  // the group it joins at the next commit
  f->pending.push_back(p);
}

void cp_async_commit() { self()->committed++; }

void cp_async_wait(int n) {
  Fiber* f = self();
  // complete every committed group but the newest n
  const uint64_t upto = f->committed >= (uint64_t)n ? f->committed - (uint64_t)n : 0;
  size_t keep = 0;
  for (size_t i = 0; i < f->pending.size(); i++) {
    Pending& p = f->pending[i];
    if (p.group < upto)
      std::memcpy(p.dst, p.data, 16);
    else
      f->pending[keep++] = p;
  }
  f->pending.resize(keep);
}

}  // namespace nd_emu
