// AVX-512 tile ops (spec: the scalar twins in tile_ops_scalar.cpp). Compiled with the AVX-512
// flags; reached only through dispatch.cpp after the CPU check.
//
// gemm_f32: C is cut into register tiles of MR rows x NV vectors of 16 columns. Each step of k
// loads NV vectors of one B row and broadcasts MR values of one A column: MR·NV independent FMA
// chains, all accumulators in registers (MR·NV + NV + 1 <= 32 zmm). B panels ([K, 16·NV]) are
// reused by every row tile, so the caller keeps them cache-sized (attention tiles are).
// online_softmax_f32: 16 columns at a time, two passes over the tile (max, then exp and sum).
// gemm_bf16: the same register tiles, a step of k being a pair of k: NV loads of the pair-packed
// B (16 columns x 2 k per zmm), a 32-bit broadcast of A's pair per row, MR·NV vdpbf16ps (twice
// the multiply-adds of an FMA at the same rate). Up to 6 x 4 vectors, 8 x 3, 8 x 2 or 12 x 1
// (24 accumulators where C is wide enough); ~95-100% of the vdpbf16ps peak on attention tiles
// in L2. A call with a prefetch hint runs tiles that also request the hinted lines, a line or so
// per k step (prefetch_spread.h; separate instantiations, so calls without one run exactly the
// plain tiles): decode attention passes the next cache tile, which the hardware prefetchers do not
// fetch ahead of the 8-row tiles (its scores product alone: ~60 % of the peak on tiles from DRAM,
// ~83 % with the hint, ~96 % in L2, Zen 4).
// gemm_bf16_nodot, for AVX-512 without AVX512_BF16: bf16 widened to fp32 (shift / mask), FMAs.
// The packers round in integer ops (bit for bit f32_to_bf16, no AVX512_BF16 needed) and read
// contiguous rows or, transposing 16 x 16 blocks of 32-bit pairs in registers, contiguous columns.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12 bug 105593: -Wuninitialized inside its own _mm512_undefined_*() helpers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "kernels/prefetch_spread.h"
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

// ---- bf16 GEMM and packers ----

struct Bf16TileCall {
  int64_t pairs;  // K / 2
  const uint16_t* a;
  int64_t lda;
  const uint16_t* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  __mmask16 last;  // columns of the last vector that exist
  bool accumulate;
  const float* row_scale;  // [MR] or null
  PrefetchSpread pf;       // kPf tiles: this call's slice of the prefetch hint
};

// The bf16 pair A[m, 2p], A[m, 2p + 1] as one 32-bit value (the layout vdpbf16ps pairs up).
KL_INLINE int32_t load_pair(const uint16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// A vector cast (the bits as they are): __m512bh is a vector of bf16 (or of short) of 64 bytes.
KL_INLINE __m512bh as_bh(__m512i v) { return (__m512bh)v; }

// One register tile of C: MR rows x NV vectors of 16 columns. Each step of the k loop takes one
// pair of k: NV loads of the pair-packed B row pair (16 columns x 2 k per register) and one
// 32-bit broadcast per row of A. kDot: MR·NV vdpbf16ps (32 multiply-adds each). Else the bf16
// halves are widened to fp32 (even k: shifted up 16 bits, odd k: low 16 bits masked off) and
// multiplied with 2·MR·NV FMAs, even k first. kPf: the hint's lines between the steps.
template <int MR, int NV, bool kDot, bool kPf>
void tile_bf16(const Bf16TileCall& t) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[i][j] = _mm512_setzero_ps();

  // Locals, so that neither the k loop nor the stores to C reload them from t.
  const uint16_t* a = t.a;
  const uint16_t* b = t.b;
  const int64_t pairs = t.pairs, lda = t.lda, ldb = t.ldb, ldc = t.ldc;
  const __mmask16 last = t.last;
  const __m512i hi_half = _mm512_set1_epi32(int32_t(0xffff0000u));
  PrefetchSpread pf = t.pf;
  for (int64_t p = 0; p < pairs; p++, a += 2, b += ldb) {
    if constexpr (kPf) pf.next();
    __m512i bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++)
      bv[j] = j + 1 < NV ? _mm512_loadu_si512(b + 32 * j) : _mm512_maskz_loadu_epi32(last, b + 32 * j);
    if constexpr (kDot) {
#pragma GCC unroll 16
      for (int i = 0; i < MR; i++) {
        const __m512bh av = as_bh(_mm512_set1_epi32(load_pair(a + i * lda)));
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, as_bh(bv[j]));
      }
    } else {
      __m512 be[NV], bo[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) {
        be[j] = _mm512_castsi512_ps(_mm512_slli_epi32(bv[j], 16));
        bo[j] = _mm512_castsi512_ps(_mm512_and_si512(bv[j], hi_half));
      }
#pragma GCC unroll 16
      for (int i = 0; i < MR; i++) {
        const __m512i av = _mm512_set1_epi32(load_pair(a + i * lda));
        const __m512 ae = _mm512_castsi512_ps(_mm512_slli_epi32(av, 16));
        const __m512 ao = _mm512_castsi512_ps(_mm512_and_si512(av, hi_half));
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) acc[i][j] = _mm512_fmadd_ps(ao, bo[j], _mm512_fmadd_ps(ae, be[j], acc[i][j]));
      }
    }
  }

  float* const c0 = t.c;
  const bool accumulate = t.accumulate;
  const float* const row_scale = t.row_scale;
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    float* c = c0 + i * ldc;
    if (accumulate) {
      const __m512 keep = _mm512_set1_ps(row_scale ? row_scale[i] : 1.f);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) {
        const __mmask16 m = j + 1 < NV ? __mmask16(0xffff) : last;
        acc[i][j] = _mm512_fmadd_ps(keep, _mm512_maskz_loadu_ps(m, c + 16 * j), acc[i][j]);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) {
      if (j + 1 < NV)
        _mm512_storeu_ps(c + 16 * j, acc[i][j]);
      else
        _mm512_mask_storeu_ps(c + 16 * j, last, acc[i][j]);
    }
  }
}

using Bf16TileFn = void (*)(const Bf16TileCall&);

// p + n, where p may be null (no A or B when K = 0): never read then.
KL_INLINE const uint16_t* offset(const uint16_t* p, int64_t n) { return p ? p + n : p; }

template <int NV, bool kDot, bool kPf, int... I>
constexpr std::array<Bf16TileFn, sizeof...(I)> bf16_tiles_for(std::integer_sequence<int, I...>) {
  return {&tile_bf16<I + 1, NV, kDot, kPf>...};
}

// Most rows of a register tile per vector count NV = 1..4: MR·NV accumulators plus the NV B
// registers (nodot: 2·NV widened halves, 2 widened A values and the mask) within 32 zmm, and
// 16-24 independent accumulation chains where the width allows. Two vectors take 8 rows, not
// 12: the 12-row tile's row offsets outgrow the general registers (GCC then parks them in
// vector registers, read back through the pipes the dot products use), at no gain.
template <bool kDot, bool kPf>
struct Bf16Tiles {
  static constexpr int kRows1 = 12, kRows2 = 8, kRows3 = kDot ? 8 : 7, kRows4 = kDot ? 6 : 5;
  static constexpr auto t1 = bf16_tiles_for<1, kDot, kPf>(std::make_integer_sequence<int, kRows1>{});
  static constexpr auto t2 = bf16_tiles_for<2, kDot, kPf>(std::make_integer_sequence<int, kRows2>{});
  static constexpr auto t3 = bf16_tiles_for<3, kDot, kPf>(std::make_integer_sequence<int, kRows3>{});
  static constexpr auto t4 = bf16_tiles_for<4, kDot, kPf>(std::make_integer_sequence<int, kRows4>{});
  static constexpr int max_rows(int nv) { return nv == 1 ? kRows1 : nv == 2 ? kRows2 : nv == 3 ? kRows3 : kRows4; }
  static Bf16TileFn fn(int nv, int mr) {
    const size_t i = size_t(mr - 1);
    return nv == 1 ? t1[i] : nv == 2 ? t2[i] : nv == 3 ? t3[i] : t4[i];
  }
  // Vectors of a panel of up to 64 columns from n0, and its register tiles over M rows.
  static int panel_vectors(const GemmBf16Args& g, int64_t n0) { return int((std::min<int64_t>(64, g.N - n0) + 15) / 16); }
  static int64_t row_tiles(const GemmBf16Args& g, int nv) { return (g.M + max_rows(nv) - 1) / max_rows(nv); }
};

template <bool kDot, bool kPf>
void gemm_bf16_tiles(const GemmBf16Args& g, PrefetchSpread pf) {
  using Tiles = Bf16Tiles<kDot, kPf>;
  // Panels of up to 64 columns (4 vectors); each panel's row tiles as even as possible.
  for (int64_t n0 = 0; n0 < g.N; n0 += 64) {
    const int nv = Tiles::panel_vectors(g, n0);
    const int64_t row_tiles = Tiles::row_tiles(g, nv);
    Bf16TileCall t{g.K / 2, nullptr, g.lda, offset(g.b, 2 * n0), g.ldb, nullptr, g.ldc,
                   lanes(std::min<int64_t>(64, g.N - n0) - 16 * (nv - 1)), g.accumulate, nullptr, {}};
    for (int64_t rt = 0, m0 = 0; rt < row_tiles; rt++) {
      const int mr = int((g.M - m0 + (row_tiles - rt) - 1) / (row_tiles - rt));
      t.a = offset(g.a, m0 * g.lda);
      t.c = g.c + m0 * g.ldc + n0;
      t.row_scale = g.row_scale ? g.row_scale + m0 : nullptr;
      if constexpr (kPf) t.pf = pf.take(t.pairs);
      Tiles::fn(nv, mr)(t);
      m0 += mr;
    }
  }
  if constexpr (kPf) pf.rest();
}

template <bool kDot>
void gemm_bf16_impl(const GemmBf16Args& g) {
  if (g.M <= 0 || g.N <= 0) return;
  if (!g.prefetch || g.prefetch_bytes <= 0) return gemm_bf16_tiles<kDot, false>(g, {});
  // The hint over the k steps of all tile calls.
  using Tiles = Bf16Tiles<kDot, true>;
  int64_t steps = 0;
  for (int64_t n0 = 0; n0 < g.N; n0 += 64) steps += g.K / 2 * Tiles::row_tiles(g, Tiles::panel_vectors(g, n0));
  gemm_bf16_tiles<kDot, true>(g, PrefetchSpread(g.prefetch, g.prefetch_bytes, steps));
}

// Lanes [0, n) of 16 (none for n <= 0) and of 32.
KL_INLINE __mmask16 lanes16(int64_t n) {
  return n <= 0 ? __mmask16(0) : n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
}
KL_INLINE __mmask32 lanes32(int64_t n) {
  return n <= 0 ? __mmask32(0) : n >= 32 ? ~__mmask32(0) : __mmask32((1u << n) - 1);
}

// f32_to_bf16 of 16 floats in integer ops (so it needs no AVX512_BF16, and unlike vcvtneps2bf16
// it keeps denormals): the bf16 in the low 16 bits of each lane, the high 16 bits zero.
KL_INLINE __m512i bf16_bits(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i hi = _mm512_srli_epi32(u, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);  // keeps its bits, quieted
  return _mm512_mask_or_epi32(rounded, nan, hi, _mm512_set1_epi32(0x40));
}

// Two vectors of bf16_bits as 32 consecutive bf16: the low halves of lo's lanes, then of hi's.
KL_INLINE __m512i pack_words(__m512i lo, __m512i hi) {
  // packus keeps 0..65535 as they are, 4 of lo then 4 of hi per 128-bit lane; the 64-bit
  // permute puts lo's quarters first.
  return _mm512_permutexvar_epi64(_mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0), _mm512_packus_epi32(lo, hi));
}

// Two vectors of bf16_bits as 16 pairs: lane i = (lo[i], hi[i]).
KL_INLINE __m512i pair_words(__m512i lo, __m512i hi) { return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)); }

// In-register transpose of a 16 x 16 block of 32-bit values: r[i] lane j <- r[j] lane i.
KL_INLINE void transpose16(__m512i (&r)[16]) {
  __m512i t[16], u[16];
  // Pairs of rows, interleaved within 128-bit lanes.
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // u[4g + c] lane L: column 4L + c of rows 4g .. 4g + 3.
#pragma GCC unroll 4
  for (int g = 0; g < 4; g++) {
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  // A 4 x 4 transpose of 128-bit lanes per c: column 4L + c gets lane L of u[c], u[4 + c], ...
#pragma GCC unroll 4
  for (int c = 0; c < 4; c++) {
    const __m512i w0 = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i w1 = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512i w2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i w3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
    r[c] = _mm512_shuffle_i32x4(w0, w2, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + c] = _mm512_shuffle_i32x4(w0, w2, _MM_SHUFFLE(3, 1, 3, 1));
    r[8 + c] = _mm512_shuffle_i32x4(w1, w3, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + c] = _mm512_shuffle_i32x4(w1, w3, _MM_SHUFFLE(3, 1, 3, 1));
  }
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

void gemm_bf16(const GemmBf16Args& g) { gemm_bf16_impl<true>(g); }
void gemm_bf16_nodot(const GemmBf16Args& g) { gemm_bf16_impl<false>(g); }

// Contiguous rows (cs == 1): 32 columns per step. Column-major source (rs == 1, e.g. the
// transpose of a row-major tile): blocks of 16 rows x 32 columns, read as 16 column pairs of
// 16 rows and transposed in registers. Other strides: the scalar twin.
void pack_bf16_rows(const PackBf16Args& p) {
  if (p.rows <= 0 || p.cols <= 0) return;
  const int64_t padded = p.cols + p.cols % 2;  // bf16 written per row
  if (p.cs == 1) {
    for (int64_t r = 0; r < p.rows; r++) {
      const float* s = p.src + r * p.rs;
      uint16_t* d = p.dst + r * p.ldd;
      int64_t c = 0;
      for (; c + 32 <= p.cols; c += 32)
        _mm512_storeu_si512(d + c, pack_words(bf16_bits(_mm512_loadu_ps(s + c)), bf16_bits(_mm512_loadu_ps(s + c + 16))));
      if (c < padded) {
        const int64_t n = p.cols - c;
        const __m512i lo = bf16_bits(_mm512_maskz_loadu_ps(lanes16(n), s + c));
        const __m512i hi = n > 16 ? bf16_bits(_mm512_maskz_loadu_ps(lanes16(n - 16), s + c + 16)) : _mm512_setzero_si512();
        _mm512_mask_storeu_epi16(d + c, lanes32(padded - c), pack_words(lo, hi));
      }
    }
  } else if (p.rs == 1) {
    for (int64_t r0 = 0; r0 < p.rows; r0 += 16) {
      const int64_t nr = std::min<int64_t>(16, p.rows - r0);
      const __mmask16 rm = lanes16(nr);
      for (int64_t c0 = 0; c0 < padded; c0 += 32) {
        __m512i t[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
          const int64_t c = c0 + 2 * j;
          if (c >= p.cols) {
            t[j] = _mm512_setzero_si512();
            continue;
          }
          const __m512i lo = bf16_bits(_mm512_maskz_loadu_ps(rm, p.src + c * p.cs + r0));
          const __m512i hi = c + 1 < p.cols ? bf16_bits(_mm512_maskz_loadu_ps(rm, p.src + (c + 1) * p.cs + r0))
                                            : _mm512_setzero_si512();
          t[j] = pair_words(lo, hi);
        }
        transpose16(t);
        const __mmask16 cm = lanes16(std::min<int64_t>(32, padded - c0) / 2);
        for (int64_t i = 0; i < nr; i++) _mm512_mask_storeu_epi32(p.dst + (r0 + i) * p.ldd + c0, cm, t[i]);
      }
    }
  } else {
    scalar::pack_bf16_rows(p);
  }
}

// Contiguous rows (cs == 1): a row pair at a time, 16 columns per step. Column-major source
// (rs == 1, e.g. B = Qᵀ from row-major Q): blocks of 32 rows x 16 columns, each column's 32 rows
// read as 16 pairs and transposed in registers. Other strides: the scalar twin.
void pack_bf16_pairs(const PackBf16Args& p) {
  if (p.rows <= 0 || p.cols <= 0) return;
  if (p.cs == 1) {
    for (int64_t q = 0; q < (p.rows + 1) / 2; q++) {
      const float* s0 = p.src + 2 * q * p.rs;
      const float* s1 = 2 * q + 1 < p.rows ? s0 + p.rs : nullptr;
      uint16_t* d = p.dst + q * p.ldd;
      for (int64_t c = 0; c < p.cols; c += 16) {
        const __mmask16 m = lanes16(p.cols - c);
        const __m512i lo = bf16_bits(_mm512_maskz_loadu_ps(m, s0 + c));
        const __m512i hi = s1 ? bf16_bits(_mm512_maskz_loadu_ps(m, s1 + c)) : _mm512_setzero_si512();
        _mm512_mask_storeu_epi32(d + 2 * c, m, pair_words(lo, hi));
      }
    }
  } else if (p.rs == 1) {
    for (int64_t r0 = 0; r0 < p.rows; r0 += 32) {
      const int64_t nr = std::min<int64_t>(32, p.rows - r0);
      const __mmask16 m0 = lanes16(nr), m1 = lanes16(nr - 16);
      for (int64_t c0 = 0; c0 < p.cols; c0 += 16) {
        const int64_t nc = std::min<int64_t>(16, p.cols - c0);
        __m512i t[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
          if (j >= nc) {
            t[j] = _mm512_setzero_si512();
            continue;
          }
          const float* s = p.src + (c0 + j) * p.cs + r0;
          const __m512i lo = bf16_bits(_mm512_maskz_loadu_ps(m0, s));
          const __m512i hi = nr > 16 ? bf16_bits(_mm512_maskz_loadu_ps(m1, s + 16)) : _mm512_setzero_si512();
          t[j] = pack_words(lo, hi);  // lane i: rows r0 + 2i, r0 + 2i + 1 of column c0 + j
        }
        transpose16(t);
        const __mmask16 cm = lanes16(nc);
        for (int64_t i = 0; i < (nr + 1) / 2; i++)
          _mm512_mask_storeu_epi32(p.dst + (r0 / 2 + i) * p.ldd + 2 * c0, cm, t[i]);
      }
    }
  } else {
    scalar::pack_bf16_pairs(p);
  }
}

// A row pair at a time: 32 columns per step (16-bit interleave within 128-bit lanes, then the
// lanes put in order), the rest 16 at a time.
void interleave_bf16_pairs(const InterleaveBf16Args& p) {
  if (p.rows <= 0 || p.cols <= 0) return;
  const __m512i first = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
  const __m512i second = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
  for (int64_t q = 0; q < (p.rows + 1) / 2; q++) {
    const uint16_t* s0 = p.src + 2 * q * p.rs;
    const uint16_t* s1 = 2 * q + 1 < p.rows ? s0 + p.rs : nullptr;
    uint16_t* d = p.dst + q * p.ldd;
    int64_t c = 0;
    for (; c + 32 <= p.cols; c += 32) {
      const __m512i x0 = _mm512_loadu_si512(s0 + c);
      const __m512i x1 = s1 ? _mm512_loadu_si512(s1 + c) : _mm512_setzero_si512();
      const __m512i lo = _mm512_unpacklo_epi16(x0, x1), hi = _mm512_unpackhi_epi16(x0, x1);
      _mm512_storeu_si512(d + 2 * c, _mm512_permutex2var_epi64(lo, first, hi));
      _mm512_storeu_si512(d + 2 * c + 32, _mm512_permutex2var_epi64(lo, second, hi));
    }
    for (; c < p.cols; c += 16) {
      const __mmask16 m = lanes16(p.cols - c);
      const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s0 + c));
      const __m512i hi = s1 ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s1 + c)) : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(d + 2 * c, m, pair_words(lo, hi));
    }
  }
}

}  // namespace kl::avx512
