// AArch64 NEON KDA kernels: the templates of kda_simd_impl.h on 4-lane vectors (Advanced SIMD is
// part of the AArch64 base ISA: no flags). Reached only through the kernel table (dispatch.cpp).
// Tiles for 32 registers, by the same register budget as the AVX-512 ones (not tuned on ARM
// hardware, which this project has no access to yet):
// - decode strips of 8 vectors (32 value columns): u, o and the next kv take 24 registers, s and
//   the four broadcasts the rest;
// - products of 6 rows x 4 vectors (24 accumulators + 4 vectors of B + a broadcast).
// NEON has no masked loads: a mask is a lane count, and the partial last vector of a row goes
// through a small buffer lane by lane, so no lane outside it is read or written.
#include <arm_neon.h>

#include "kernels/kda_simd_impl.h"
#include "kernels/neon_impl.h"

namespace kl::neon {

namespace {

struct Ops {
  using V = float32x4_t;
  using M = int;  // the first M lanes
  static constexpr int W = 4;
  static constexpr int kRecVecs = 8;
  static constexpr int kGemmRows = 6;
  static constexpr int kGemmVecs = 4;

  static KL_KDA_INLINE V zero() { return vdupq_n_f32(0.f); }
  static KL_KDA_INLINE V set1(float x) { return vdupq_n_f32(x); }
  static KL_KDA_INLINE V load(const float* p) { return vld1q_f32(p); }
  static KL_KDA_INLINE void store(float* p, V x) { vst1q_f32(p, x); }
  static KL_KDA_INLINE M mask(int n) { return n; }
  static KL_KDA_INLINE V loadm(const float* p, M n) {
    float t[4] = {0.f, 0.f, 0.f, 0.f};
    for (int i = 0; i < n; i++) t[i] = p[i];
    return vld1q_f32(t);
  }
  static KL_KDA_INLINE void storem(float* p, M n, V x) {
    float t[4];
    vst1q_f32(t, x);
    for (int i = 0; i < n; i++) p[i] = t[i];
  }
  static KL_KDA_INLINE V add(V a, V b) { return vaddq_f32(a, b); }
  static KL_KDA_INLINE V sub(V a, V b) { return vsubq_f32(a, b); }
  static KL_KDA_INLINE V mul(V a, V b) { return vmulq_f32(a, b); }
  static KL_KDA_INLINE V fmadd(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static KL_KDA_INLINE V fnmadd(V a, V b, V c) { return vfmsq_f32(c, a, b); }
  static KL_KDA_INLINE float hsum(V x) { return vaddvq_f32(x); }
  // out[0..3] = the lane sums of a, b, c, d: two rounds of pairwise adds.
  static KL_KDA_INLINE void hsum4(V a, V b, V c, V d, float* out) {
    vst1q_f32(out, vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d)));
  }

  // The construction of the AVX-512 exp (kda_avx512.cpp): exp(x) = 2^n · exp(r), n = round(x /
  // ln 2), r = x − n ln 2 (ln 2 split in two so n·ln2_hi is exact), exp(r) by its Taylor series
  // to r^7; 2^n built in the exponent bits. Lanes with x < ln(FLT_MIN) are zeroed (n would leave
  // the normal range; x = −inf, whose r is NaN, gives 0); a NaN x stays NaN.
  static KL_KDA_INLINE V exp(V x) {
    const V n = vrndnq_f32(vmulq_f32(x, set1(1.44269504f)));
    V r = vfmsq_f32(x, n, set1(0.693359375f));
    r = vfmsq_f32(r, n, set1(-2.12194440e-4f));
    V p = set1(1.f / 5040.f);
    p = fmadd(p, r, set1(1.f / 720.f));
    p = fmadd(p, r, set1(1.f / 120.f));
    p = fmadd(p, r, set1(1.f / 24.f));
    p = fmadd(p, r, set1(1.f / 6.f));
    p = fmadd(p, r, set1(0.5f));
    p = fmadd(p, r, set1(1.f));
    p = fmadd(p, r, set1(1.f));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    const V y = vmulq_f32(p, vreinterpretq_f32_s32(e));
    return vbslq_f32(vcltq_f32(x, set1(-87.3365447f)), zero(), y);
  }
};

}  // namespace

void kda_recurrent_head(const KdaSeqArgs& a, int64_t h) { kda_simd::recurrent_head<Ops>(a, h); }
void kda_chunk_head(const KdaSeqArgs& a, int64_t h, float* scratch) { kda_simd::chunk_head<Ops>(a, h, scratch); }
void kda_exp(const float* x, float* y, int64_t n) { kda_simd::exp_array<Ops>(x, y, n); }

}  // namespace kl::neon
