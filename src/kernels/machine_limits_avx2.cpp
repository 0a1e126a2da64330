// Register-only loop for the peak-throughput measurement (machine_limits.cpp), AVX2/FMA part.
#include <immintrin.h>

#include "kernels/x86_impl.h"

namespace kl::avx2 {

namespace {
// Independent chains: more than latency x ports (4-5 cycles x 2 FMA pipes) so the loop is bound
// by throughput only; 12 leaves registers of the 16 for the operands.
constexpr int kChains = 12;
}  // namespace

double fma_loop(int64_t iters, float* sink) {
  __m256 acc[kChains];
  for (int k = 0; k < kChains; k++) acc[k] = _mm256_set1_ps(float(k));
  // acc = acc·b + c converges to c / (1 - b): no overflow, no denormals, whatever iters is.
  const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
  for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
    for (int k = 0; k < kChains; k++) acc[k] = _mm256_fmadd_ps(acc[k], b, c);
  }
  __m256 s = acc[0];
  for (int k = 1; k < kChains; k++) s = _mm256_add_ps(s, acc[k]);
  alignas(32) float v[8];
  _mm256_store_ps(v, s);
  *sink = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
  return double(iters) * kChains * 8 * 2;
}

namespace {
inline uint64_t hsum(__m256i t) {
  alignas(32) uint64_t v[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), t);
  return v[0] + v[1] + v[2] + v[3];
}
}  // namespace

uint64_t read_sum_seq(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  __m256i s[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                  _mm256_setzero_si256()};
  for (size_t i = 0; i < bytes; i += 128) {
    for (int k = 0; k < 4; k++)
      s[k] = _mm256_add_epi64(s[k],
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i + 32 * k)));
  }
  return hsum(_mm256_add_epi64(_mm256_add_epi64(s[0], s[1]), _mm256_add_epi64(s[2], s[3])));
}

uint64_t read_sum(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  const size_t q = bytes / 4 / 64 * 64;  // bytes per stream
  __m256i s[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                  _mm256_setzero_si256()};
  for (size_t i = 0; i < q; i += 64) {
    for (int k = 0; k < 4; k++) {
      const char* at = c + size_t(k) * q + i;
      s[k] = _mm256_add_epi64(s[k], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at)));
      s[k] = _mm256_add_epi64(s[k], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + 32)));
    }
  }
  for (size_t i = 4 * q; i + 32 <= bytes; i += 32)
    s[0] = _mm256_add_epi64(s[0], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i)));
  return hsum(_mm256_add_epi64(_mm256_add_epi64(s[0], s[1]), _mm256_add_epi64(s[2], s[3])));
}

}  // namespace kl::avx2
