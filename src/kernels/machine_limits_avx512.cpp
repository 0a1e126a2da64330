// Register-only loops for the peak-throughput measurement (machine_limits.cpp), AVX-512 part.
// GCC 12 warns about the `__Y = __Y` self-initialisation inside its own _mm512_undefined_*()
// helpers (GCC bug 105593, fixed in 13); the warning points into the header, not at this code.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "kernels/x86_impl.h"

namespace kl::avx512 {

namespace {
// Independent chains: more than latency x ports (4 cycles x 2 FMA pipes on current cores) so the
// loop is bound by throughput only; 16 leaves registers for the operands.
constexpr int kChains = 16;
}  // namespace

double fma_loop(int64_t iters, float* sink) {
  __m512 acc[kChains];
  for (int k = 0; k < kChains; k++) acc[k] = _mm512_set1_ps(float(k));
  // acc = acc·b + c converges to c / (1 - b): no overflow, no denormals, whatever iters is.
  const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
  for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
    for (int k = 0; k < kChains; k++) acc[k] = _mm512_fmadd_ps(acc[k], b, c);
  }
  __m512 s = acc[0];
  for (int k = 1; k < kChains; k++) s = _mm512_add_ps(s, acc[k]);
  *sink = _mm512_reduce_add_ps(s);
  return double(iters) * kChains * 16 * 2;
}

double dpbf16_loop(int64_t iters, float* sink) {
  __m512 acc[kChains];
  for (int k = 0; k < kChains; k++) acc[k] = _mm512_setzero_ps();
  // acc grows by 32 · 2⁻²⁰ per lane per iteration: far from overflow for any run length.
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.f / 1024), _mm512_set1_ps(1.f / 1024));
  const __m512bh b = a;
  for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
    for (int k = 0; k < kChains; k++) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
  }
  __m512 s = acc[0];
  for (int k = 1; k < kChains; k++) s = _mm512_add_ps(s, acc[k]);
  *sink = _mm512_reduce_add_ps(s);
  return double(iters) * kChains * 32 * 2;
}

// The eight 64-bit lanes summed as unsigned numbers (wrapping): GCC's _mm512_reduce_add_epi64
// adds them as signed long long, which overflows (undefined) on arbitrary data such as weights.
namespace {
uint64_t hsum_u64(__m512i v) {
  alignas(64) uint64_t l[8];
  _mm512_store_si512(l, v);
  uint64_t s = 0;
  for (uint64_t x : l) s += x;
  return s;
}
}  // namespace

// Full 64-byte loads, one per cache line (on Zen 5 a core streams ~25% faster this way than
// with 16-byte loads), from four streams at once, as the matmul kernels read several weight
// rows at once: one stream per core leaves some of the memory system's parallelism unused.
uint64_t read_sum(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  const size_t q = bytes / 4 / 128 * 128;  // bytes per stream
  __m512i s[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
  for (size_t i = 0; i < q; i += 128) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      s[k] = _mm512_add_epi64(s[k], _mm512_loadu_si512(c + size_t(k) * q + i));
      s[k] = _mm512_add_epi64(s[k], _mm512_loadu_si512(c + size_t(k) * q + i + 64));
    }
  }
  for (size_t i = 4 * q; i + 64 <= bytes; i += 64) s[0] = _mm512_add_epi64(s[0], _mm512_loadu_si512(c + i));
  return hsum_u64(_mm512_add_epi64(_mm512_add_epi64(s[0], s[1]), _mm512_add_epi64(s[2], s[3])));
}

uint64_t read_sum_seq(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
  for (size_t i = 0; i + 128 <= bytes; i += 128) {
    s0 = _mm512_add_epi64(s0, _mm512_loadu_si512(c + i));
    s1 = _mm512_add_epi64(s1, _mm512_loadu_si512(c + i + 64));
  }
  return hsum_u64(_mm512_add_epi64(s0, s1));
}

}  // namespace kl::avx512
