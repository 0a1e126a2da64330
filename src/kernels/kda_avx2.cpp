// AVX2/FMA KDA kernels: the templates of kda_simd_impl.h on 8-lane vectors. Compiled with the
// AVX2 flags; reached only through the kernel table (dispatch.cpp) after the CPU check.
// Tiles for 16 registers (measured on Zen 5 against 2- and 3-vector strips and 4x2/4x3 products):
// - decode strips of 4 vectors (32 value columns): u, o and the next kv take 12 registers, s and
//   the four broadcasts the rest, one of them spilled; still faster than narrower strips, which
//   spend more broadcasts per column;
// - products of 6 rows x 2 vectors (12 accumulators + 2 vectors of B + a broadcast).
// Empty on other architectures: CMake compiles every .cpp of the folder, with the ISA flags on x86 only.
#if defined(KL_HAVE_X86_KERNELS)
#include <immintrin.h>

#include "kernels/kda_simd_impl.h"

namespace kl::avx2 {

namespace {

struct Ops {
  using V = __m256;
  using M = __m256i;
  static constexpr int W = 8;
  static constexpr int kRecVecs = 4;
  static constexpr int kGemmRows = 6;
  static constexpr int kGemmVecs = 2;

  static KL_KDA_INLINE V zero() { return _mm256_setzero_ps(); }
  static KL_KDA_INLINE V set1(float x) { return _mm256_set1_ps(x); }
  static KL_KDA_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  static KL_KDA_INLINE void store(float* p, V x) { _mm256_storeu_ps(p, x); }
  // Lane i is on when i < n (the sign bit of each 32-bit lane selects it).
  static KL_KDA_INLINE M mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static KL_KDA_INLINE V loadm(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  static KL_KDA_INLINE void storem(float* p, M m, V x) { _mm256_maskstore_ps(p, m, x); }
  static KL_KDA_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  static KL_KDA_INLINE V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static KL_KDA_INLINE V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static KL_KDA_INLINE V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static KL_KDA_INLINE V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  static KL_KDA_INLINE float hsum(V x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // out[0..3] = the lane sums of a, b, c, d (two rounds of pairwise adds, then the two halves).
  static KL_KDA_INLINE void hsum4(V a, V b, V c, V d, float* out) {
    const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
  }

  // Same construction as the AVX-512 exp (kda_avx512.cpp).
  static KL_KDA_INLINE V exp(V x) {
    const V n = _mm256_round_ps(_mm256_mul_ps(x, set1(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm256_fnmadd_ps(n, set1(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    V p = set1(1.f / 5040.f);
    p = fmadd(p, r, set1(1.f / 720.f));
    p = fmadd(p, r, set1(1.f / 120.f));
    p = fmadd(p, r, set1(1.f / 24.f));
    p = fmadd(p, r, set1(1.f / 6.f));
    p = fmadd(p, r, set1(0.5f));
    p = fmadd(p, r, set1(1.f));
    p = fmadd(p, r, set1(1.f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const V y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_blendv_ps(y, zero(), _mm256_cmp_ps(x, set1(-87.3365447f), _CMP_LT_OQ));
  }
};

}  // namespace

void kda_recurrent_head(const KdaSeqArgs& a, int64_t h) { kda_simd::recurrent_head<Ops>(a, h); }
void kda_chunk_head(const KdaSeqArgs& a, int64_t h, float* scratch) { kda_simd::chunk_head<Ops>(a, h, scratch); }
void kda_exp(const float* x, float* y, int64_t n) { kda_simd::exp_array<Ops>(x, y, n); }

}  // namespace kl::avx2

#endif  // KL_HAVE_X86_KERNELS
