// AArch64 NEON tile ops (spec: the scalar twins in tile_ops_scalar.cpp). Advanced SIMD is part of
// the AArch64 base ISA: no flags; reached only through dispatch.cpp. The scheme of
// tile_ops_avx2.cpp on 4-lane vectors and 32 registers (not tuned on ARM hardware, which this
// project has no access to yet):
// - gemm_f32: register tiles of up to 5 rows x 4 vectors (16 columns). A may be row- or
//   column-major, so each of its values is loaded on its own (GCC turns the broadcasts into
//   scalar loads and fmla by element). The scheduler (GCC 12 -O3) issues all of a step's loads
//   first, so a step holds MR values of A and 4 vectors of B at once beside the MR·4
//   accumulators: 6 rows (34 registers) spilled two accumulators in the k loop, 5 rows (29) fit.
// - gemm_bf16: tiles of up to 3 rows x 4 vectors. A is row-major here, so a row's 4 next k are
//   one 64-bit load widened to fp32, and the FMAs take their A factor by lane (fmla by element);
//   the B row pair is widened in registers into its even-k and odd-k halves (3 registers per
//   vector of B, all of a step's loaded early: 4 rows spilled in the k loop, as 6 rows of fp32).
// - online_softmax_f32: 4 columns at a time, with its own vector exp (the construction and
//   constants of kda_neon.cpp's).
// NEON has no masked loads: a narrower last vector (a width that is not a multiple of 4) is a
// separate instantiation whose loads and stores go through a small buffer, so no lane outside the
// operand is read or written and full tiles pay nothing for it.
// The packers vectorize contiguous sources (cs == 1); other strides go to the scalar twins.
#include <arm_neon.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "core/dtype.h"
#include "kernels/tile_ops_impl.h"

namespace kl::neon {

namespace {

// The tile code must be inlined whole: an accumulator array that escapes into a call lives in
// memory instead of registers.
#define KL_INLINE inline __attribute__((always_inline))

// The first L floats at p as a vector (the other lanes 0), and the first L lanes of v stored at p.
template <int L>
KL_INLINE float32x4_t load_f32(const float* p) {
  if constexpr (L == 4) {
    return vld1q_f32(p);
  } else {
    float t[4] = {0.f, 0.f, 0.f, 0.f};
    std::memcpy(t, p, sizeof(float) * L);
    return vld1q_f32(t);
  }
}

template <int L>
KL_INLINE void store_f32(float* p, float32x4_t v) {
  if constexpr (L == 4) {
    vst1q_f32(p, v);
  } else {
    float t[4];
    vst1q_f32(t, v);
    std::memcpy(p, t, sizeof(float) * L);
  }
}

// A tile of W columns has (W + 3) / 4 vectors, the last of them L lanes wide (a full tile's W is
// the GEMM's column block; narrower ones are the last block of a row).
template <int W>
constexpr int kVecs = (W + 3) / 4;
template <int W>
constexpr int kLast = W - 4 * (kVecs<W> - 1);

// The C update of a tile: C = acc, or C = keep · C + acc with keep = row_scale[i] (or 1).
template <int MR, int W>
KL_INLINE void store_tile(float32x4_t (&acc)[MR][kVecs<W>], float* c0, int64_t ldc, bool accumulate,
                          const float* row_scale) {
  constexpr int NV = kVecs<W>, L = kLast<W>;
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) {
    float* c = c0 + i * ldc;
    if (accumulate) {
      const float32x4_t keep = vdupq_n_f32(row_scale ? row_scale[i] : 1.f);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) {
        const float32x4_t old = j + 1 < NV ? vld1q_f32(c + 4 * j) : load_f32<L>(c + 4 * j);
        acc[i][j] = vfmaq_f32(acc[i][j], keep, old);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) {
      if (j + 1 < NV)
        vst1q_f32(c + 4 * j, acc[i][j]);
      else
        store_f32<L>(c + 4 * j, acc[i][j]);
    }
  }
}

// ---- fp32 GEMM ----

struct TileCall {
  int64_t K;
  const float* a;
  int64_t a_rs, a_cs;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  bool accumulate;
  const float* row_scale;
};

// MR rows x W columns: per k, the B row's vectors once and one broadcast of A per row, MR·NV
// independent FMA chains (20 for a full tile: enough to cover the FMA latency on 2-4 pipes).
template <int MR, int W>
void tile(const TileCall& t) {
  constexpr int NV = kVecs<W>, L = kLast<W>;
  float32x4_t acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[i][j] = vdupq_n_f32(0.f);

  const float* a = t.a;
  const float* b = t.b;
  const int64_t a_rs = t.a_rs;
  for (int64_t k = 0; k < t.K; k++, a += t.a_cs, b += t.ldb) {
    float32x4_t bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) bv[j] = j + 1 < NV ? vld1q_f32(b + 4 * j) : load_f32<L>(b + 4 * j);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      const float32x4_t av = vld1q_dup_f32(a + i * a_rs);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) acc[i][j] = vfmaq_f32(acc[i][j], av, bv[j]);
    }
  }
  store_tile<MR, W>(acc, t.c, t.ldc, t.accumulate, t.row_scale);
}

using TileFn = void (*)(const TileCall&);

// fns[mr - 1][w - 1] = tile<mr, w>.
template <int MR, int... W>
constexpr std::array<TileFn, sizeof...(W)> widths_for(std::integer_sequence<int, W...>) {
  return {&tile<MR, W + 1>...};
}
constexpr int kRows = 5;
constexpr int kCols = 16;
template <int... R>
constexpr std::array<std::array<TileFn, kCols>, sizeof...(R)> tiles_for(std::integer_sequence<int, R...>) {
  return {widths_for<R + 1>(std::make_integer_sequence<int, kCols>{})...};
}
constexpr auto kTiles = tiles_for(std::make_integer_sequence<int, kRows>{});

// p + n, where p may be null (no A or B when K = 0): never read then.
template <class T>
KL_INLINE const T* offset(const T* p, int64_t n) {
  return p ? p + n : p;
}

// ---- bf16 GEMM ----

struct Bf16TileCall {
  int64_t K;  // even
  const uint16_t* a;
  int64_t lda;
  const uint16_t* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  bool accumulate;
  const float* row_scale;
};

// The first L columns (2·L bf16) of a pair-packed B row pair as 32-bit lanes (the others 0).
template <int L>
KL_INLINE uint32x4_t load_pairs(const uint16_t* p) {
  if constexpr (L == 4) {
    return vreinterpretq_u32_u16(vld1q_u16(p));
  } else {
    uint16_t t[8] = {};
    std::memcpy(t, p, sizeof(uint16_t) * 2 * L);
    return vreinterpretq_u32_u16(vld1q_u16(t));
  }
}

// One B row pair (k, k + 1) into acc: each lane of B holds the pair of one column, the even k in
// its low 16 bits; shifted up it is the fp32 of B[k, n], masked it is B[k + 1, n] (bf16 is the
// top half of an fp32, so both are exact). A's factors are the lanes lo, lo + 1 of av[i].
template <int MR, int W, int lo>
KL_INLINE void bf16_pair(float32x4_t (&acc)[MR][kVecs<W>], const float32x4_t (&av)[MR], const uint16_t* b) {
  constexpr int NV = kVecs<W>, L = kLast<W>;
  const uint32x4_t hi_half = vdupq_n_u32(0xffff0000u);
#pragma GCC unroll 4
  for (int j = 0; j < NV; j++) {
    const uint32x4_t bv = j + 1 < NV ? load_pairs<4>(b + 8 * j) : load_pairs<L>(b + 8 * j);
    const float32x4_t be = vreinterpretq_f32_u32(vshlq_n_u32(bv, 16));
    const float32x4_t bo = vreinterpretq_f32_u32(vandq_u32(bv, hi_half));
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      acc[i][j] = vfmaq_laneq_f32(acc[i][j], be, av[i], lo);
      acc[i][j] = vfmaq_laneq_f32(acc[i][j], bo, av[i], lo + 1);
    }
  }
}

// MR rows x W columns, k in steps of 4 (two B row pairs per 64-bit load of each A row). Register
// budget of a full tile: 12 accumulators, 3 rows of A, the mask and 4 B vectors with their
// widened halves (12): 28 of 32, with nothing spilled when the scheduler loads all of B first.
template <int MR, int W>
void tile_bf16(const Bf16TileCall& t) {
  constexpr int NV = kVecs<W>;
  float32x4_t acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[i][j] = vdupq_n_f32(0.f);

  const uint16_t* b = t.b;
  const int64_t lda = t.lda, ldb = t.ldb;
  int64_t k = 0;
  for (; k + 4 <= t.K; k += 4, b += 2 * ldb) {
    float32x4_t av[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) av[i] = vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(t.a + i * lda + k), 16));
    bf16_pair<MR, W, 0>(acc, av, b);
    bf16_pair<MR, W, 2>(acc, av, b + ldb);
  }
  if (k < t.K) {  // K % 4 == 2: one last pair (A rows may end there, so 32 bits of each)
    float32x4_t av[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      uint16_t pair[4] = {};
      std::memcpy(pair, t.a + i * lda + k, 2 * sizeof(uint16_t));
      av[i] = vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(pair), 16));
    }
    bf16_pair<MR, W, 0>(acc, av, b);
  }
  store_tile<MR, W>(acc, t.c, t.ldc, t.accumulate, t.row_scale);
}

using Bf16TileFn = void (*)(const Bf16TileCall&);

template <int MR, int... W>
constexpr std::array<Bf16TileFn, sizeof...(W)> bf16_widths_for(std::integer_sequence<int, W...>) {
  return {&tile_bf16<MR, W + 1>...};
}
constexpr int kBf16Rows = 3;
constexpr int kBf16Cols = 16;
template <int... R>
constexpr std::array<std::array<Bf16TileFn, kBf16Cols>, sizeof...(R)> bf16_tiles_for(std::integer_sequence<int, R...>) {
  return {bf16_widths_for<R + 1>(std::make_integer_sequence<int, kBf16Cols>{})...};
}
constexpr auto kBf16Tiles = bf16_tiles_for(std::make_integer_sequence<int, kBf16Rows>{});

// Rows [0, M) in row_tiles tiles of as equal a height as possible (at most rows): a remainder of
// 1 or 2 rows would leave most of the FMA chains of its tile idle.
template <class F>
KL_INLINE void for_row_tiles(int64_t M, int rows, F&& f) {
  const int64_t row_tiles = (M + rows - 1) / rows;
  for (int64_t rt = 0, m0 = 0; rt < row_tiles; rt++) {
    const int mr = int((M - m0 + (row_tiles - rt) - 1) / (row_tiles - rt));
    f(m0, mr);
    m0 += mr;
  }
}

// ---- softmax ----

// e^x: exp(x) = 2^n · exp(r), n = round(x / ln 2), r = x − n ln 2 (ln 2 split in two so n·ln2_hi
// is exact), exp(r) by its Taylor series to r^7, 2^n built in the exponent bits: the construction
// and constants of kda_neon.cpp's Ops::exp. Lanes with x < ln(FLT_MIN) are 0 (n would leave the
// normal range; x = −inf, whose r is NaN, gives 0). Meant for x <= 0: a large positive x gives
// garbage, which the softmax only produces in lanes it then masks off.
KL_INLINE float32x4_t exp_nonpos(float32x4_t x) {
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.f / 5040.f);
  p = vfmaq_f32(vdupq_n_f32(1.f / 720.f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f / 120.f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f / 24.f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f / 6.f), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f), p, r);
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  const float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
  return vbslq_f32(vcltq_f32(x, vdupq_n_f32(-87.3365447f)), vdupq_n_f32(0.f), y);
}

// The online softmax of columns [j0, j0 + L), L <= 4 (a narrower last group of columns is a
// separate instantiation, so the full ones load and store whole vectors).
template <int L>
void softmax_cols(const OnlineSoftmaxArgs& a, int64_t j0) {
  const float32x4_t neg_inf = vdupq_n_f32(-std::numeric_limits<float>::infinity());
  // Keys r < visible[i] are seen by column j0 + i; lanes past the last column see none.
  int32_t visible[4] = {0, 0, 0, 0};
  int64_t vis_min = a.n_keys, vis_max = 0;
  for (int i = 0; i < L; i++) {
    const int64_t v = std::clamp<int64_t>(a.vis0 + (j0 + i) / a.cols_per_step - a.key0, 0, a.n_keys);
    visible[i] = int32_t(v);
    vis_min = std::min(vis_min, v);
    vis_max = std::max(vis_max, v);
  }
  const int32x4_t vis = vld1q_s32(visible);
  // Keys below vis_min are seen by every lane (the lanes past the last column included: they are
  // computed, never stored), keys from vis_max on by none; in between, a mask per key: the lanes
  // (as all-ones) of the columns that see it.
  auto seen = [&](int64_t r) { return vcgtq_s32(vis, vdupq_n_s32(int32_t(r))); };

  float* s = a.s + j0;
  float32x4_t mt = neg_inf;
  int64_t r = 0;
  for (; r < vis_min; r++) mt = vmaxq_f32(mt, load_f32<L>(s + r * a.ld));
  for (; r < vis_max; r++) mt = vmaxq_f32(mt, vbslq_f32(seen(r), load_f32<L>(s + r * a.ld), neg_inf));
  const float32x4_t m_old = load_f32<L>(a.m + j0);
  const float32x4_t m_new = vmaxq_f32(m_old, mt);
  // A column with no visible key yet (m' = −inf) subtracts 0 instead (−inf − −inf is NaN), so
  // its exp(m − m') is 0 before being replaced by alpha = 1.
  const uint32x4_t none = vceqq_f32(m_new, neg_inf);
  const float32x4_t m_sub = vbslq_f32(none, vdupq_n_f32(0.f), m_new);
  const float32x4_t alpha = vbslq_f32(none, vdupq_n_f32(1.f), exp_nonpos(vsubq_f32(m_old, m_sub)));

  float32x4_t sum = vdupq_n_f32(0.f);
  for (r = 0; r < vis_min; r++) {
    float* row = s + r * a.ld;
    const float32x4_t p = exp_nonpos(vsubq_f32(load_f32<L>(row), m_sub));
    store_f32<L>(row, p);
    sum = vaddq_f32(sum, p);
  }
  for (; r < vis_max; r++) {
    float* row = s + r * a.ld;
    const float32x4_t e = exp_nonpos(vsubq_f32(load_f32<L>(row), m_sub));
    const float32x4_t p = vreinterpretq_f32_u32(vandq_u32(seen(r), vreinterpretq_u32_f32(e)));
    store_f32<L>(row, p);
    sum = vaddq_f32(sum, p);
  }
  for (; r < a.n_keys; r++) store_f32<L>(s + r * a.ld, vdupq_n_f32(0.f));
  store_f32<L>(a.m + j0, m_new);
  store_f32<L>(a.l + j0, vfmaq_f32(sum, alpha, load_f32<L>(a.l + j0)));
  store_f32<L>(a.alpha + j0, alpha);
}

// ---- packers ----

// f32_to_bf16 of 4 floats in integer ops: the bf16 in the low 16 bits of each lane.
KL_INLINE uint16x4_t bf16_bits(float32x4_t x) {
  const uint32x4_t u = vreinterpretq_u32_f32(x);
  const uint32x4_t hi = vshrq_n_u32(u, 16);
  const uint32x4_t lsb = vandq_u32(hi, vdupq_n_u32(1));
  const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(vaddq_u32(u, vdupq_n_u32(0x7fff)), lsb), 16);
  // NaN keeps its bits, quieted (an integer compare: exact for every bit pattern).
  const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
  return vmovn_u32(vbslq_u32(nan, vorrq_u32(hi, vdupq_n_u32(0x40)), rounded));
}

}  // namespace

void gemm_f32(const GemmF32Args& g) {
  if (g.M <= 0 || g.N <= 0) return;
  for (int64_t n0 = 0; n0 < g.N; n0 += kCols) {
    const int64_t width = std::min<int64_t>(kCols, g.N - n0);
    TileCall t{g.K, nullptr, g.a_rs, g.a_cs, g.b + n0, g.ldb, nullptr, g.ldc, g.accumulate, nullptr};
    for_row_tiles(g.M, kRows, [&](int64_t m0, int mr) {
      t.a = offset(g.a, m0 * g.a_rs);
      t.c = g.c + m0 * g.ldc + n0;
      t.row_scale = g.row_scale ? g.row_scale + m0 : nullptr;
      kTiles[size_t(mr - 1)][size_t(width - 1)](t);
    });
  }
}

void gemm_bf16(const GemmBf16Args& g) {
  if (g.M <= 0 || g.N <= 0) return;
  for (int64_t n0 = 0; n0 < g.N; n0 += kBf16Cols) {
    const int64_t width = std::min<int64_t>(kBf16Cols, g.N - n0);
    Bf16TileCall t{g.K, nullptr, g.lda, offset(g.b, 2 * n0), g.ldb, nullptr, g.ldc, g.accumulate, nullptr};
    for_row_tiles(g.M, kBf16Rows, [&](int64_t m0, int mr) {
      t.a = offset(g.a, m0 * g.lda);
      t.c = g.c + m0 * g.ldc + n0;
      t.row_scale = g.row_scale ? g.row_scale + m0 : nullptr;
      kBf16Tiles[size_t(mr - 1)][size_t(width - 1)](t);
    });
  }
}

void online_softmax_f32(const OnlineSoftmaxArgs& a) {
  int64_t j0 = 0;
  for (; j0 + 4 <= a.n_cols; j0 += 4) softmax_cols<4>(a, j0);
  switch (a.n_cols - j0) {
    case 3: return softmax_cols<3>(a, j0);
    case 2: return softmax_cols<2>(a, j0);
    case 1: return softmax_cols<1>(a, j0);
    default: return;
  }
}

void pack_bf16_rows(const PackBf16Args& p) {
  if (p.cs != 1) return scalar::pack_bf16_rows(p);
  for (int64_t r = 0; r < p.rows; r++) {
    const float* s = p.src + r * p.rs;
    uint16_t* d = p.dst + r * p.ldd;
    int64_t c = 0;
    for (; c + 8 <= p.cols; c += 8) vst1q_u16(d + c, vcombine_u16(bf16_bits(vld1q_f32(s + c)), bf16_bits(vld1q_f32(s + c + 4))));
    for (; c < p.cols; c++) d[c] = f32_to_bf16(s[c]);
    if (p.cols % 2) d[p.cols] = 0;
  }
}

// st2 stores two vectors interleaved lane by lane: exactly the pair-packed layout of two rows.
void pack_bf16_pairs(const PackBf16Args& p) {
  if (p.cs != 1) return scalar::pack_bf16_pairs(p);
  for (int64_t q = 0; q < (p.rows + 1) / 2; q++) {
    const float* s0 = p.src + 2 * q * p.rs;
    const float* s1 = 2 * q + 1 < p.rows ? s0 + p.rs : nullptr;
    uint16_t* d = p.dst + q * p.ldd;
    int64_t c = 0;
    for (; c + 4 <= p.cols; c += 4) {
      const uint16x4x2_t v = {{bf16_bits(vld1q_f32(s0 + c)), s1 ? bf16_bits(vld1q_f32(s1 + c)) : vdup_n_u16(0)}};
      vst2_u16(d + 2 * c, v);
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
    for (; c + 8 <= p.cols; c += 8) {
      const uint16x8x2_t v = {{vld1q_u16(s0 + c), s1 ? vld1q_u16(s1 + c) : vdupq_n_u16(0)}};
      vst2q_u16(d + 2 * c, v);
    }
    for (; c < p.cols; c++) {
      d[2 * c] = s0[c];
      d[2 * c + 1] = s1 ? s1[c] : 0;
    }
  }
}

#undef KL_INLINE

}  // namespace kl::neon
