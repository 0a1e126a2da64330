// The prefetch hint of GemmBf16Args (tile_ops.h), spread over the k steps of a GEMM's register
// tile calls (x86; the AVX-512 tile ops). The GEMM plans it once over all its
// steps, hands each tile call the next slice, and the tile requests `step` lines into L2 per k
// step while its slice lasts. Prefetches never fault, and the addresses are kept as integers, so
// a hint may cover any bytes. Everything is forced inline: the ISA-specific files that include
// this are compiled with different flags, so no out-of-line copy may be shared between them.
#pragma once
#include <xmmintrin.h>

#include <algorithm>
#include <cstdint>

namespace kl {

struct PrefetchSpread {
  uintptr_t at = 0;   // next line
  int64_t lines = 0;  // lines left
  int step = 0;       // lines per k step

  PrefetchSpread() = default;
  // The lines of [p, p + bytes), `step` of them per k step so that `steps` steps cover them.
  __attribute__((always_inline)) PrefetchSpread(const void* p, int64_t bytes, int64_t steps) {
    if (!p || bytes <= 0) return;
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p);
    at = begin & ~uintptr_t(63);
    lines = int64_t((begin + uintptr_t(bytes) - at + 63) / 64);
    step = int(std::max<int64_t>(1, (lines + steps - 1) / std::max<int64_t>(1, steps)));
  }
  // The slice for a tile call of `steps` k steps, taken off the front.
  __attribute__((always_inline)) PrefetchSpread take(int64_t steps) {
    PrefetchSpread s = *this;
    s.lines = std::min(lines, step * steps);
    at += uintptr_t(64 * s.lines);
    lines -= s.lines;
    return s;
  }
  // One k step's share (in the tile loop).
  __attribute__((always_inline)) void next() {
    for (int i = 0; i < step && lines > 0; i++, at += 64, lines--)
      _mm_prefetch(reinterpret_cast<const char*>(at), _MM_HINT_T1);
  }
  __attribute__((always_inline)) void rest() {  // what no step took (K = 0)
    for (; lines > 0; at += 64, lines--) _mm_prefetch(reinterpret_cast<const char*>(at), _MM_HINT_T1);
  }
};

}  // namespace kl
