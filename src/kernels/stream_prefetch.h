// Software prefetch for decode-sized matmul calls (x86; shared by the AVX2 and AVX-512 kernels).
//
// A decode step streams every weight byte once from DRAM with little work per byte. The hardware
// prefetcher alone leaves much of the bandwidth unused: it follows the R row streams of a tile
// only a little way ahead. A call's rows are one contiguous range of bytes, so a tile asks for
// the bytes ahead of it in that range, as many lines per step as the step consumes: into L2
// kFar bytes ahead (enough lines in flight to cover the DRAM latency at full rate), then into
// L1 kNear bytes ahead. Prefetches stop at the end of the call's rows.
//
// Measured on Zen 5, 2 threads, the weights of a decode step of the 48B geometry (attention
// projections, 9 experts, lm_head) against a ~53 GB/s read probe, 4-row tiles: per-row prefetch
// 1 KiB ahead 35-45 GB/s; linear into L1 1 KiB ahead ~35; into L2 only, 16 or 32 KiB ahead ~42;
// L1 4 KiB + L2 16 KiB ~43; L1 16 KiB + L2 64 KiB ~44; L1 8 KiB + L2 32 KiB ~46 (86 % of the
// probe). One row at a time (n = 1) reads in address order, which the hardware prefetchers
// follow well by themselves: on Zen 5, L1 4 KiB ahead alone did as well as anything tried (none,
// L2 8 or 32 KiB ahead), 63-69 GB/s while the probe read ~85. On Zen 4 (`kernels_bench stream`,
// 2 threads, a 1 GiB BF16 matvec alternating with the probe) L1 4 KiB ahead reached 81-88 % of
// the probe in slow phases (~31-36 GB/s) and only 62-65 % in fast ones (35 of ~55 GB/s); adding
// L2 16 KiB ahead: 94-99 % and 86 % (48 of 56); L2 32 KiB: 92-99 % and 70-89 %; L1 16 KiB alone:
// 67-88 %. Hence L1 4 KiB + L2 16 KiB.
#pragma once
#include <xmmintrin.h>

#include <cstddef>

namespace kl::stream_prefetch {

// Distances for tiles of several interleaved rows, and for one row at a time.
constexpr size_t kNear = 8 * 1024, kFar = 32 * 1024;
constexpr size_t kNearSequential = 4 * 1024, kFarSequential = 16 * 1024;

struct Stream {
  const char* end = nullptr;  // one past the call's last weight byte; null: no prefetch
};

// Prefetches the kStepBytes that follow `at`, near bytes ahead into L1 and far bytes ahead into
// L2 (0: not), up to s.end. kRows: rows of the tile that consumes them (1: address order).
template <size_t kStepBytes, int kRows>
inline __attribute__((always_inline)) void ahead(const char* at, const Stream& s) {
  constexpr size_t near = kRows == 1 ? kNearSequential : kNear;
  constexpr size_t far = kRows == 1 ? kFarSequential : kFar;
#pragma GCC unroll 8
  for (size_t o = 0; o < kStepBytes; o += 64) {
    if (near && at + near + o < s.end) _mm_prefetch(at + near + o, _MM_HINT_T0);
    if (far && at + far + o < s.end) _mm_prefetch(at + far + o, _MM_HINT_T1);
  }
}

}  // namespace kl::stream_prefetch
