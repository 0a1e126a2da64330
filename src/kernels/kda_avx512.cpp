// AVX-512 KDA kernels: the templates of kda_simd_impl.h on 16-lane vectors. Compiled with the
// AVX-512 flags; reached only through the kernel table (dispatch.cpp) after the CPU check.
// Tiles (measured on Zen 5, the fastest of 4/6/8-vector strips and 4x4/6x4/8x3 products):
// - decode strips of 8 vectors, whole rows at V = 128 (u, o and the next kv take 24 of the 32
//   registers; s and the four broadcasts the rest). A 64 KiB strip spills from L1 to L2 between
//   tokens, but each broadcast serves 8 vectors;
// - products of 6 rows x 4 vectors (24 accumulators + 4 vectors of B).
// GCC 12 warns about the `__Y = __Y` self-initialisation inside its own _mm512_undefined_*()
// helpers (GCC bug 105593, fixed in 13); the warning points into the header, not at this code.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// Empty on other architectures: CMake compiles every .cpp of the folder, with the ISA flags on x86 only.
#if defined(KL_HAVE_X86_KERNELS)
#include <immintrin.h>

#include "kernels/kda_simd_impl.h"

namespace kl::avx512 {

namespace {

struct Ops {
  using V = __m512;
  using M = __mmask16;
  static constexpr int W = 16;
  static constexpr int kRecVecs = 8;
  static constexpr int kGemmRows = 6;
  static constexpr int kGemmVecs = 4;

  static KL_KDA_INLINE V zero() { return _mm512_setzero_ps(); }
  static KL_KDA_INLINE V set1(float x) { return _mm512_set1_ps(x); }
  static KL_KDA_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  static KL_KDA_INLINE void store(float* p, V x) { _mm512_storeu_ps(p, x); }
  static KL_KDA_INLINE M mask(int n) { return M((1u << n) - 1u); }
  static KL_KDA_INLINE V loadm(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  static KL_KDA_INLINE void storem(float* p, M m, V x) { _mm512_mask_storeu_ps(p, m, x); }
  static KL_KDA_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  static KL_KDA_INLINE V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static KL_KDA_INLINE V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static KL_KDA_INLINE V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static KL_KDA_INLINE V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
  static KL_KDA_INLINE float hsum(V x) { return _mm512_reduce_add_ps(x); }
  // out[0..3] = the lane sums of a, b, c, d: halve each to 8 lanes, then two rounds of
  // pairwise adds leave {Σa, Σb, Σc, Σd} in each 128-bit half.
  static KL_KDA_INLINE void hsum4(V a, V b, V c, V d, float* out) {
    auto half = [](V x) { return _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1)); };
    const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(half(a), half(b)), _mm256_hadd_ps(half(c), half(d)));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
  }

  // exp(x) = 2^n · exp(r), n = round(x / ln 2), r = x − n ln 2 in [−ln2/2, ln2/2] (ln 2 split in
  // two so n·ln2_hi is exact), exp(r) by its Taylor series to r^7 (truncation < 6e-9 relative).
  // vscalefps applies 2^n; lanes with x < ln(FLT_MIN) are zeroed (no subnormals; x = −inf, whose
  // r is NaN, gives 0), a NaN x stays NaN.
  static KL_KDA_INLINE V exp(V x) {
    const V n = _mm512_roundscale_ps(_mm512_mul_ps(x, set1(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, set1(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    V p = set1(1.f / 5040.f);
    p = fmadd(p, r, set1(1.f / 720.f));
    p = fmadd(p, r, set1(1.f / 120.f));
    p = fmadd(p, r, set1(1.f / 24.f));
    p = fmadd(p, r, set1(1.f / 6.f));
    p = fmadd(p, r, set1(0.5f));
    p = fmadd(p, r, set1(1.f));
    p = fmadd(p, r, set1(1.f));
    return _mm512_maskz_scalef_ps(_mm512_cmp_ps_mask(x, set1(-87.3365447f), _CMP_NLT_UQ), p, n);
  }
};

}  // namespace

void kda_recurrent_head(const KdaSeqArgs& a, int64_t h) { kda_simd::recurrent_head<Ops>(a, h); }
void kda_chunk_head(const KdaSeqArgs& a, int64_t h, float* scratch) { kda_simd::chunk_head<Ops>(a, h, scratch); }
void kda_exp(const float* x, float* y, int64_t n) { kda_simd::exp_array<Ops>(x, y, n); }

}  // namespace kl::avx512

#endif  // KL_HAVE_X86_KERNELS
