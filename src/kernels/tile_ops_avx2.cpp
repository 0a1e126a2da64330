// AVX2 tile ops (spec: the scalar twins in tile_ops_scalar.cpp). Compiled with AVX2+FMA;
// reached only through dispatch.cpp after the CPU check. Same scheme as tile_ops_avx512.cpp with
// 8-lane vectors and 16 registers: register tiles of up to 6 rows x 2 vectors (12 accumulators).
// A last vector column narrower than 8 lanes uses masked loads and stores (a separate
// instantiation, so full tiles pay nothing for it).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include "kernels/tile_ops_impl.h"

namespace kl::avx2 {

namespace {

#define KL_INLINE inline __attribute__((always_inline))

struct TileCall {
  int64_t K;
  const float* a;
  int64_t a_rs, a_cs;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  __m256i last;  // lanes of the last vector column that exist (all-ones lanes)
  bool accumulate;
  const float* row_scale;
};

template <bool kMasked>
KL_INLINE __m256 load_last(const float* p, __m256i m) {
  if constexpr (kMasked)
    return _mm256_maskload_ps(p, m);
  else
    return _mm256_loadu_ps(p);
}

template <int MR, int NV, bool kMasked>
void tile(const TileCall& t) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
    for (int j = 0; j < NV; j++) acc[i][j] = _mm256_setzero_ps();

  const float* a = t.a;
  const float* b = t.b;
  const int64_t a_rs = t.a_rs;
  for (int64_t k = 0; k < t.K; k++, a += t.a_cs, b += t.ldb) {
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int j = 0; j < NV; j++) bv[j] = j + 1 < NV ? _mm256_loadu_ps(b + 8 * j) : load_last<kMasked>(b + 8 * j, t.last);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      const __m256 av = _mm256_broadcast_ss(a + i * a_rs);
#pragma GCC unroll 2
      for (int j = 0; j < NV; j++) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }

#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) {
    float* c = t.c + i * t.ldc;
    if (t.accumulate) {
      const __m256 keep = _mm256_set1_ps(t.row_scale ? t.row_scale[i] : 1.f);
#pragma GCC unroll 2
      for (int j = 0; j < NV; j++) {
        const __m256 old = j + 1 < NV ? _mm256_loadu_ps(c + 8 * j) : load_last<kMasked>(c + 8 * j, t.last);
        acc[i][j] = _mm256_fmadd_ps(keep, old, acc[i][j]);
      }
    }
#pragma GCC unroll 2
    for (int j = 0; j < NV; j++) {
      if (j + 1 < NV || !kMasked)
        _mm256_storeu_ps(c + 8 * j, acc[i][j]);
      else
        _mm256_maskstore_ps(c + 8 * j, t.last, acc[i][j]);
    }
  }
}

using TileFn = void (*)(const TileCall&);

template <int NV, bool kMasked, int... I>
constexpr std::array<TileFn, sizeof...(I)> tiles_for(std::integer_sequence<int, I...>) {
  return {&tile<I + 1, NV, kMasked>...};
}

constexpr int kRows = 6;
constexpr auto kFull1 = tiles_for<1, false>(std::make_integer_sequence<int, kRows>{});
constexpr auto kFull2 = tiles_for<2, false>(std::make_integer_sequence<int, kRows>{});
constexpr auto kTail1 = tiles_for<1, true>(std::make_integer_sequence<int, kRows>{});
constexpr auto kTail2 = tiles_for<2, true>(std::make_integer_sequence<int, kRows>{});

KL_INLINE __m256i lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(std::min<int64_t>(n, 8))), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// e^x for x <= 0; the same reduction and polynomial as the AVX-512 version, 2^n built in the
// exponent bits (n >= -126 after the clamp, so it is a normal number); 0 below -87.3.
KL_INLINE __m256 exp_nonpos(__m256 x) {
  const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_GE_OQ);
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 5040.f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(live, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

}  // namespace

void gemm_f32(const GemmF32Args& g) {
  if (g.M <= 0 || g.N <= 0) return;
  const int64_t row_tiles = (g.M + kRows - 1) / kRows;
  for (int64_t n0 = 0; n0 < g.N; n0 += 16) {
    const int64_t width = std::min<int64_t>(16, g.N - n0);
    const int nv = int((width + 7) / 8);
    const int64_t last = width - 8 * (nv - 1);
    TileCall t{g.K, nullptr, g.a_rs, g.a_cs, g.b + n0, g.ldb, nullptr, g.ldc, lanes(last), g.accumulate, nullptr};
    for (int64_t rt = 0, m0 = 0; rt < row_tiles; rt++) {
      const int mr = int((g.M - m0 + (row_tiles - rt) - 1) / (row_tiles - rt));
      t.a = g.a + m0 * g.a_rs;
      t.c = g.c + m0 * g.ldc + n0;
      t.row_scale = g.row_scale ? g.row_scale + m0 : nullptr;
      const auto& fns = last == 8 ? (nv == 1 ? kFull1 : kFull2) : (nv == 1 ? kTail1 : kTail2);
      fns[size_t(mr - 1)](t);
      m0 += mr;
    }
  }
}

void online_softmax_f32(const OnlineSoftmaxArgs& a) {
  const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j0 = 0; j0 < a.n_cols; j0 += 8) {
    const int w = int(std::min<int64_t>(8, a.n_cols - j0));
    const __m256i cols = lanes(w);
    alignas(32) int32_t visible[8] = {};
    int64_t vis_min = a.n_keys, vis_max = 0;
    for (int i = 0; i < w; i++) {
      const int64_t v = std::clamp<int64_t>(a.vis0 + (j0 + i) / a.cols_per_step - a.key0, 0, a.n_keys);
      visible[i] = int32_t(v);
      vis_min = std::min(vis_min, v);
      vis_max = std::max(vis_max, v);
    }
    const __m256i vis = _mm256_load_si256(reinterpret_cast<const __m256i*>(visible));
    // Lanes (as all-ones masks) of the columns that see key r of the tile.
    auto seen = [&](int64_t r) { return _mm256_and_si256(cols, _mm256_cmpgt_epi32(vis, _mm256_set1_epi32(int32_t(r)))); };
    auto load = [&](const float* p, __m256i m) { return _mm256_maskload_ps(p, m); };
    auto masked = [&](__m256 v, __m256i m, __m256 other) { return _mm256_blendv_ps(other, v, _mm256_castsi256_ps(m)); };

    float* s = a.s + j0;
    __m256 mt = neg_inf;
    for (int64_t r = 0; r < vis_max; r++) {
      const __m256i live = r < vis_min ? cols : seen(r);
      mt = _mm256_max_ps(mt, masked(load(s + r * a.ld, live), live, neg_inf));
    }
    const __m256 m_old = masked(load(a.m + j0, cols), cols, neg_inf);
    const __m256 m_new = _mm256_max_ps(m_old, mt);
    const __m256 none = _mm256_cmp_ps(m_new, neg_inf, _CMP_EQ_OQ);
    const __m256 m_sub = _mm256_andnot_ps(none, m_new);
    const __m256 alpha = _mm256_blendv_ps(exp_nonpos(_mm256_sub_ps(m_old, m_sub)), _mm256_set1_ps(1.f), none);

    __m256 sum = _mm256_setzero_ps();
    for (int64_t r = 0; r < a.n_keys; r++) {
      const __m256i live = r < vis_min ? cols : seen(r);
      const __m256 p = _mm256_and_ps(_mm256_castsi256_ps(live), exp_nonpos(_mm256_sub_ps(load(s + r * a.ld, live), m_sub)));
      _mm256_maskstore_ps(s + r * a.ld, cols, p);
      sum = _mm256_add_ps(sum, p);
    }
    const __m256 l = _mm256_fmadd_ps(alpha, load(a.l + j0, cols), sum);
    _mm256_maskstore_ps(a.m + j0, cols, m_new);
    _mm256_maskstore_ps(a.l + j0, cols, l);
    _mm256_maskstore_ps(a.alpha + j0, cols, alpha);
  }
}

}  // namespace kl::avx2
