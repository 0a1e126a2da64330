// AVX2 tile ops (spec: the scalar twins in tile_ops_scalar.cpp). Compiled with AVX2+FMA;
// reached only through dispatch.cpp after the CPU check. Same scheme as tile_ops_avx512.cpp with
// 8-lane vectors and 16 registers: register tiles of up to 6 rows x 2 vectors (12 accumulators).
// A last vector column narrower than 8 lanes uses masked loads and stores (a separate
// instantiation, so full tiles pay nothing for it).
// gemm_bf16: the same tiles (4 rows x 2 vectors) on bf16 widened to fp32 in registers. The
// packers vectorize contiguous sources only (the rest is the scalar twins).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "core/dtype.h"
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

// ---- bf16 GEMM and packers ----

struct Bf16TileCall {
  int64_t pairs;  // K / 2
  const uint16_t* a;
  int64_t lda;
  const uint16_t* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  __m256i last;  // columns of the last vector that exist (all-ones lanes)
  bool accumulate;
  const float* row_scale;
};

KL_INLINE int32_t load_pair(const uint16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Register tile of MR rows x NV vectors of 8 columns. A step of the k loop takes a pair of k:
// NV loads of the pair-packed B row pair (8 columns x 2 k per register) widened into even-k and
// odd-k fp32 halves (shift up 16 bits / mask off the low 16), one 32-bit broadcast per row of A
// widened the same way; per accumulator the pair's two products are summed (mul, FMA) and then
// added. MR·NV + 2·NV + 3 <= 16 registers leave 8 accumulators, too few chains for two FMAs
// per step each (2 x 4 cycles of latency per 8 cycles of FMA work); with one add per step the
// chain is short, and AMD cores run FP adds on pipes of their own (~87% of the FMA peak on
// Zen 5 against ~81% for two chained FMAs; on Intel cores the add competes for the FMA ports).
template <int MR, int NV, bool kMasked>
void tile_bf16(const Bf16TileCall& t) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
    for (int j = 0; j < NV; j++) acc[i][j] = _mm256_setzero_ps();

  const uint16_t* a = t.a;
  const uint16_t* b = t.b;
  const int64_t lda = t.lda, ldb = t.ldb;
  const __m256i hi_half = _mm256_set1_epi32(int32_t(0xffff0000u));
  for (int64_t p = 0; p < t.pairs; p++, a += 2, b += ldb) {
    __m256 be[NV], bo[NV];
#pragma GCC unroll 2
    for (int j = 0; j < NV; j++) {
      const __m256i bv = j + 1 < NV || !kMasked ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16 * j))
                                                : _mm256_maskload_epi32(reinterpret_cast<const int*>(b + 16 * j), t.last);
      be[j] = _mm256_castsi256_ps(_mm256_slli_epi32(bv, 16));
      bo[j] = _mm256_castsi256_ps(_mm256_and_si256(bv, hi_half));
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      const __m256i av = _mm256_set1_epi32(load_pair(a + i * lda));
      const __m256 ae = _mm256_castsi256_ps(_mm256_slli_epi32(av, 16));
      const __m256 ao = _mm256_castsi256_ps(_mm256_and_si256(av, hi_half));
#pragma GCC unroll 2
      for (int j = 0; j < NV; j++) acc[i][j] = _mm256_add_ps(acc[i][j], _mm256_fmadd_ps(ao, bo[j], _mm256_mul_ps(ae, be[j])));
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

using Bf16TileFn = void (*)(const Bf16TileCall&);

// p + n, where p may be null (no A or B when K = 0): never read then.
KL_INLINE const uint16_t* offset(const uint16_t* p, int64_t n) { return p ? p + n : p; }

template <int NV, bool kMasked, int... I>
constexpr std::array<Bf16TileFn, sizeof...(I)> bf16_tiles_for(std::integer_sequence<int, I...>) {
  return {&tile_bf16<I + 1, NV, kMasked>...};
}

constexpr int kBf16Rows = 4;
constexpr auto kBf16Full1 = bf16_tiles_for<1, false>(std::make_integer_sequence<int, kBf16Rows>{});
constexpr auto kBf16Full2 = bf16_tiles_for<2, false>(std::make_integer_sequence<int, kBf16Rows>{});
constexpr auto kBf16Tail1 = bf16_tiles_for<1, true>(std::make_integer_sequence<int, kBf16Rows>{});
constexpr auto kBf16Tail2 = bf16_tiles_for<2, true>(std::make_integer_sequence<int, kBf16Rows>{});

// f32_to_bf16 of 8 floats in integer ops: the bf16 in the low 16 bits of each lane.
KL_INLINE __m256i bf16_bits(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i hi = _mm256_srli_epi32(u, 16);
  const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));  // keeps its bits, quieted
  return _mm256_blendv_epi8(rounded, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
}

KL_INLINE __m256i pair_words(__m256i lo, __m256i hi) { return _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16)); }

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

void gemm_bf16(const GemmBf16Args& g) {
  if (g.M <= 0 || g.N <= 0) return;
  const int64_t row_tiles = (g.M + kBf16Rows - 1) / kBf16Rows;
  for (int64_t n0 = 0; n0 < g.N; n0 += 16) {
    const int64_t width = std::min<int64_t>(16, g.N - n0);
    const int nv = int((width + 7) / 8);
    const int64_t last = width - 8 * (nv - 1);
    Bf16TileCall t{g.K / 2, nullptr, g.lda, offset(g.b, 2 * n0), g.ldb, nullptr, g.ldc, lanes(last), g.accumulate, nullptr};
    for (int64_t rt = 0, m0 = 0; rt < row_tiles; rt++) {
      const int mr = int((g.M - m0 + (row_tiles - rt) - 1) / (row_tiles - rt));
      t.a = offset(g.a, m0 * g.lda);
      t.c = g.c + m0 * g.ldc + n0;
      t.row_scale = g.row_scale ? g.row_scale + m0 : nullptr;
      const auto& fns = last == 8 ? (nv == 1 ? kBf16Full1 : kBf16Full2) : (nv == 1 ? kBf16Tail1 : kBf16Tail2);
      fns[size_t(mr - 1)](t);
      m0 += mr;
    }
  }
}

// The packers vectorize contiguous rows (cs == 1), 8 or 16 columns per step with the rest of a
// row in scalar code; other strides go to the scalar twins.
void pack_bf16_rows(const PackBf16Args& p) {
  if (p.cs != 1) return scalar::pack_bf16_rows(p);
  for (int64_t r = 0; r < p.rows; r++) {
    const float* s = p.src + r * p.rs;
    uint16_t* d = p.dst + r * p.ldd;
    int64_t c = 0;
    for (; c + 16 <= p.cols; c += 16) {
      // packus keeps 0..65535 as is; it interleaves 128-bit lanes, which the permute undoes.
      const __m256i w = _mm256_packus_epi32(bf16_bits(_mm256_loadu_ps(s + c)), bf16_bits(_mm256_loadu_ps(s + c + 8)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + c), _mm256_permute4x64_epi64(w, _MM_SHUFFLE(3, 1, 2, 0)));
    }
    for (; c < p.cols; c++) d[c] = f32_to_bf16(s[c]);
    if (p.cols % 2) d[p.cols] = 0;
  }
}

void pack_bf16_pairs(const PackBf16Args& p) {
  if (p.cs != 1) return scalar::pack_bf16_pairs(p);
  for (int64_t q = 0; q < (p.rows + 1) / 2; q++) {
    const float* s0 = p.src + 2 * q * p.rs;
    const float* s1 = 2 * q + 1 < p.rows ? s0 + p.rs : nullptr;
    uint16_t* d = p.dst + q * p.ldd;
    int64_t c = 0;
    for (; c + 8 <= p.cols; c += 8) {
      const __m256i hi = s1 ? bf16_bits(_mm256_loadu_ps(s1 + c)) : _mm256_setzero_si256();
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 2 * c), pair_words(bf16_bits(_mm256_loadu_ps(s0 + c)), hi));
    }
    for (; c < p.cols; c++) {
      d[2 * c] = f32_to_bf16(s0[c]);
      d[2 * c + 1] = s1 ? f32_to_bf16(s1[c]) : 0;
    }
  }
}

void interleave_bf16_pairs(const InterleaveBf16Args& p) {
  for (int64_t q = 0; q < (p.rows + 1) / 2; q++) {
    const uint16_t* s0 = p.src + 2 * q * p.rs;
    const uint16_t* s1 = 2 * q + 1 < p.rows ? s0 + p.rs : nullptr;
    uint16_t* d = p.dst + q * p.ldd;
    int64_t c = 0;
    for (; c + 16 <= p.cols; c += 16) {
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s0 + c));
      const __m256i x1 = s1 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s1 + c)) : _mm256_setzero_si256();
      // Interleaved within 128-bit lanes: lo = columns 0-3 | 8-11, hi = 4-7 | 12-15.
      const __m256i lo = _mm256_unpacklo_epi16(x0, x1), hi = _mm256_unpackhi_epi16(x0, x1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 2 * c), _mm256_permute2x128_si256(lo, hi, 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 2 * c + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    for (; c < p.cols; c++) {
      d[2 * c] = s0[c];
      d[2 * c + 1] = s1 ? s1[c] : 0;
    }
  }
}

}  // namespace kl::avx2
