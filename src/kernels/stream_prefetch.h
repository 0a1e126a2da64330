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
// projections, 9 experts, lm_head) against a ~53 GB/s read probe: per-row prefetch 1 KiB ahead
// 35-45 GB/s; linear into L1 1 KiB ahead ~35; into L2 only, 16 or 32 KiB ahead ~42; L1 4 KiB +
// L2 16 KiB ~43; L1 16 KiB + L2 64 KiB ~44; L1 8 KiB + L2 32 KiB ~46 (86 % of the probe).
#pragma once
#include <xmmintrin.h>

#include <cstddef>

namespace kl::stream_prefetch {

constexpr size_t kNear = 8 * 1024;
constexpr size_t kFar = 32 * 1024;

struct Stream {
  const char* end = nullptr;  // one past the call's last weight byte; null: no prefetch
};

// Prefetches the kStepBytes that follow `at` kNear and kFar bytes ahead, up to s.end.
template <size_t kStepBytes>
inline __attribute__((always_inline)) void ahead(const char* at, const Stream& s) {
#pragma GCC unroll 8
  for (size_t o = 0; o < kStepBytes; o += 64) {
    if (at + kNear + o < s.end) _mm_prefetch(at + kNear + o, _MM_HINT_T0);
    if (at + kFar + o < s.end) _mm_prefetch(at + kFar + o, _MM_HINT_T1);
  }
}

}  // namespace kl::stream_prefetch
