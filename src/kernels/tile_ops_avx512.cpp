// AVX-512 tile ops (spec: the scalar twins in tile_ops_scalar.cpp). Compiled with the AVX-512
// flags; reached only through dispatch.cpp after the CPU check.
//
// gemm_f32: C is cut into register tiles of MR rows x NV vectors of 16 columns. Each step of k
// loads NV vectors of one B row and broadcasts MR values of one A column: MR·NV independent FMA
// chains, all accumulators in registers (MR·NV + NV + 1 <= 32 zmm). B panels ([K, 16·NV]) are
// reused by every row tile, so the caller keeps them cache-sized (attention tiles are).
// online_softmax_f32: 16 columns at a time, two passes over the tile (max, then exp and sum).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12 bug 105593: -Wuninitialized inside its own _mm512_undefined_*() helpers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include "kernels/tile_ops_impl.h"

namespace kl::avx512 {

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
  __mmask16 last;  // lanes of the last vector column that exist
  bool accumulate;
  const float* row_scale;  // [MR] or null
};

template <int MR, int NV>
void tile(const TileCall& t) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[i][j] = _mm512_setzero_ps();

  const float* a = t.a;
  const float* b = t.b;
  const int64_t a_rs = t.a_rs;
  for (int64_t k = 0; k < t.K; k++, a += t.a_cs, b += t.ldb) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++)
      bv[j] = j + 1 < NV ? _mm512_loadu_ps(b + 16 * j) : _mm512_maskz_loadu_ps(t.last, b + 16 * j);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const __m512 av = _mm512_set1_ps(a[i * a_rs]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }

#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    float* c = t.c + i * t.ldc;
    if (t.accumulate) {
      const __m512 keep = _mm512_set1_ps(t.row_scale ? t.row_scale[i] : 1.f);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) {
        const __mmask16 m = j + 1 < NV ? __mmask16(0xffff) : t.last;
        acc[i][j] = _mm512_fmadd_ps(keep, _mm512_maskz_loadu_ps(m, c + 16 * j), acc[i][j]);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) {
      if (j + 1 < NV)
        _mm512_storeu_ps(c + 16 * j, acc[i][j]);
      else
        _mm512_mask_storeu_ps(c + 16 * j, t.last, acc[i][j]);
    }
  }
}

using TileFn = void (*)(const TileCall&);

template <int NV, int... I>
constexpr std::array<TileFn, sizeof...(I)> tiles_for(std::integer_sequence<int, I...>) {
  return {&tile<I + 1, NV>...};
}

// Register tiles: 8 x 2 vectors for narrow C (16 chains, 10 loads per 16 FMAs), 6 x 4 otherwise
// (24 chains, 10 loads per 24 FMAs).
constexpr int kNarrowRows = 8, kWideRows = 6;
constexpr auto kNarrow1 = tiles_for<1>(std::make_integer_sequence<int, kNarrowRows>{});
constexpr auto kNarrow2 = tiles_for<2>(std::make_integer_sequence<int, kNarrowRows>{});
constexpr auto kWide1 = tiles_for<1>(std::make_integer_sequence<int, kWideRows>{});
constexpr auto kWide2 = tiles_for<2>(std::make_integer_sequence<int, kWideRows>{});
constexpr auto kWide3 = tiles_for<3>(std::make_integer_sequence<int, kWideRows>{});
constexpr auto kWide4 = tiles_for<4>(std::make_integer_sequence<int, kWideRows>{});

KL_INLINE __mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

// e^x for x <= 0 (accurate to a few ulp; exactly 0 below -87.3, where e^x leaves the normal
// range). x = n·ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact reduction), e^r by its
// degree-7 Taylor polynomial (truncation error below 1e-8), then scaled by 2^n.
KL_INLINE __m512 exp_nonpos(__m512 x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040.f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_maskz_scalef_ps(live, p, n);
}

}  // namespace

void gemm_f32(const GemmF32Args& g) {
  if (g.M <= 0 || g.N <= 0) return;
  const bool narrow = g.N <= 32;
  const int max_rows = narrow ? kNarrowRows : kWideRows;
  const int64_t max_cols = narrow ? 32 : 64;
  // Row tiles as even as possible (32 rows -> 6,6,5,5,5,5 rather than 6,6,6,6,6,2).
  const int64_t row_tiles = (g.M + max_rows - 1) / max_rows;
  for (int64_t n0 = 0; n0 < g.N; n0 += max_cols) {
    const int64_t width = std::min(max_cols, g.N - n0);
    const int nv = int((width + 15) / 16);
    TileCall t{g.K, nullptr, g.a_rs, g.a_cs, g.b + n0, g.ldb, nullptr, g.ldc,
               lanes(width - 16 * (nv - 1)), g.accumulate, nullptr};
    for (int64_t rt = 0, m0 = 0; rt < row_tiles; rt++) {
      const int mr = int((g.M - m0 + (row_tiles - rt) - 1) / (row_tiles - rt));
      t.a = g.a + m0 * g.a_rs;
      t.c = g.c + m0 * g.ldc + n0;
      t.row_scale = g.row_scale ? g.row_scale + m0 : nullptr;
      TileFn fn;
      if (narrow)
        fn = nv == 1 ? kNarrow1[size_t(mr - 1)] : kNarrow2[size_t(mr - 1)];
      else
        fn = nv == 1 ? kWide1[size_t(mr - 1)]
             : nv == 2 ? kWide2[size_t(mr - 1)]
             : nv == 3 ? kWide3[size_t(mr - 1)]
                       : kWide4[size_t(mr - 1)];
      fn(t);
      m0 += mr;
    }
  }
}

void online_softmax_f32(const OnlineSoftmaxArgs& a) {
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j0 = 0; j0 < a.n_cols; j0 += 16) {
    const __mmask16 cols = lanes(a.n_cols - j0);
    const int w = int(std::min<int64_t>(16, a.n_cols - j0));
    // Keys [0, visible[lane]) of the tile are seen by column j0 + lane.
    alignas(64) int32_t visible[16] = {};
    int64_t vis_min = a.n_keys, vis_max = 0;
    for (int i = 0; i < w; i++) {
      const int64_t v = std::clamp<int64_t>(a.vis0 + (j0 + i) / a.cols_per_step - a.key0, 0, a.n_keys);
      visible[i] = int32_t(v);
      vis_min = std::min(vis_min, v);
      vis_max = std::max(vis_max, v);
    }
    const __m512i vis = _mm512_load_si512(visible);
    auto seen = [&](int64_t r) { return __mmask16(cols & _mm512_cmpgt_epi32_mask(vis, _mm512_set1_epi32(int32_t(r)))); };

    __m512 mt = neg_inf;
    float* s = a.s + j0;
    for (int64_t r = 0; r < vis_min; r++) mt = _mm512_max_ps(mt, _mm512_mask_loadu_ps(neg_inf, cols, s + r * a.ld));
    for (int64_t r = vis_min; r < vis_max; r++)
      mt = _mm512_max_ps(mt, _mm512_mask_loadu_ps(neg_inf, seen(r), s + r * a.ld));

    const __m512 m_old = _mm512_mask_loadu_ps(neg_inf, cols, a.m + j0);
    const __m512 m_new = _mm512_max_ps(m_old, mt);
    // Columns that have still seen nothing: subtract 0 (all their p are 0 anyway), alpha = 1.
    const __mmask16 none = _mm512_cmp_ps_mask(m_new, neg_inf, _CMP_EQ_OQ);
    const __m512 m_sub = _mm512_mask_blend_ps(none, m_new, _mm512_setzero_ps());
    const __m512 alpha = _mm512_mask_blend_ps(none, exp_nonpos(_mm512_sub_ps(m_old, m_sub)), _mm512_set1_ps(1.f));

    __m512 sum = _mm512_setzero_ps();
    for (int64_t r = 0; r < vis_min; r++) {
      const __m512 p = exp_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(cols, s + r * a.ld), m_sub));
      _mm512_mask_storeu_ps(s + r * a.ld, cols, p);
      sum = _mm512_add_ps(sum, p);
    }
    for (int64_t r = vis_min; r < a.n_keys; r++) {
      const __mmask16 live = seen(r);
      const __m512 p = _mm512_maskz_mov_ps(live, exp_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, s + r * a.ld), m_sub)));
      _mm512_mask_storeu_ps(s + r * a.ld, cols, p);
      sum = _mm512_add_ps(sum, p);
    }
    const __m512 l = _mm512_fmadd_ps(alpha, _mm512_maskz_loadu_ps(cols, a.l + j0), sum);
    _mm512_mask_storeu_ps(a.m + j0, cols, m_new);
    _mm512_mask_storeu_ps(a.l + j0, cols, l);
    _mm512_mask_storeu_ps(a.alpha + j0, cols, alpha);
  }
}

}  // namespace kl::avx512
