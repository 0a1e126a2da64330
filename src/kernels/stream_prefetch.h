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
// probe). One row at a time (n = 1) reads the call's bytes in address order, which the
// hardware prefetchers follow by themselves, and software prefetch there costs more than it
// brings: on Zen 5 no variant tried (none, L1 4 KiB ahead, L2 8 or 32 KiB ahead) beat none
// (63-69 GB/s while the probe read ~85); on Zen 4 (`kernels_bench stream`, 2 threads, a 1 GiB
// BF16 matvec alternating with the probe) none reached 96-111 % of the probe against 77-102 %
// for L1 4 KiB + L2 16 KiB ahead, and `bench --synthetic` tg128 judged against bandwidth sampled
// during the run 91-96 % against 79-86 %; a standalone matvec on 2 MiB pages streamed at 52-63
// GB/s without prefetch, 34-46 with it. So rows read in address order get none.
#pragma once
#include <xmmintrin.h>

#include <cstddef>

namespace kl::stream_prefetch {

// Distances for tiles of several interleaved rows.
constexpr size_t kNear = 8 * 1024, kFar = 32 * 1024;

struct Stream {
  const char* end = nullptr;  // one past the call's last weight byte; null: no prefetch
};

// Prefetches the kStepBytes that follow `at`, kNear bytes ahead into L1 and kFar bytes ahead
// into L2, up to s.end. kRows: rows of the tile that consumes them (1: address order, none).
template <size_t kStepBytes, int kRows>
inline __attribute__((always_inline)) void ahead(const char* at, const Stream& s) {
  if constexpr (kRows > 1) {
#pragma GCC unroll 8
    for (size_t o = 0; o < kStepBytes; o += 64) {
      if (at + kNear + o < s.end) _mm_prefetch(at + kNear + o, _MM_HINT_T0);
      if (at + kFar + o < s.end) _mm_prefetch(at + kFar + o, _MM_HINT_T1);
    }
  }
}

}  // namespace kl::stream_prefetch
