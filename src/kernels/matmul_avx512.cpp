// AVX-512 matmul kernels: y[t, r] = Σ_i W[r, i]·x[t, i] (spec: the scalar twins in
// matmul_scalar.cpp). Compiled with the AVX-512 flags; reached only through dispatch.cpp after
// the CPU check.
//
// Shape of the work: W rows and x rows both run along i, so every output is a dot product. A
// tile of R rows x T tokens keeps R·T accumulators of 16 lanes in registers; each step loads R
// weight vectors (widened to fp32) and T activation vectors and does R·T FMAs. Lanes are summed
// once at the end of the row.
// - Decode (n <= 6, one token tile): bandwidth bound. Each weight byte is read once, with software
//   prefetch; for n = 1 two accumulators per row (8 independent FMA chains cover the latency).
// - Prompts: compute bound. 4 rows x up to 6 tokens (24 accumulators + 4 weights of the 32
//   registers); a block of rows that fits in L2 is reused by every token tile.
// - bf16 activations (matmul_rows_bf16_dot, opt-in): the same tiling over vdpbf16ps, 32 columns
//   per instruction, with x rounded to bf16 into a stack buffer.

// GCC 12 warns about the `__Y = __Y` self-initialisation inside its own _mm512_undefined_*()
// helpers (GCC bug 105593, fixed in 13); the warning points into the header, not at this code.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/x86_impl.h"

namespace kl::avx512 {

namespace {

// The tile code must be inlined whole: an accumulator array that escapes into a call (a lambda
// or store helper the compiler chose not to inline) lives in memory instead of registers.
#define KL_INLINE inline __attribute__((always_inline))

constexpr int kRows = 4;    // rows per tile
constexpr int kTokens = 6;  // most tokens per tile (4·6 accumulators)
// Weight bytes of one row block: half of a 512 KiB..2 MiB L2, leaving the rest for the x tiles.
constexpr size_t kRowBlockBytes = 256 * 1024;

// Weight formats: 16 consecutive weights at byte address p, widened to fp32. load_tail reads
// only the lanes set in m (masked loads never touch the others, so row ends are not over-read).
struct F32W {
  static constexpr size_t kSize = 4;
  static KL_INLINE __m512 load(const char* p) { return _mm512_loadu_ps(p); }
  static KL_INLINE __m512 load_tail(const char* p, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, p);
  }
};
struct BF16W {
  static constexpr size_t kSize = 2;
  // bf16 is the top half of an fp32: widen to 32 bits and shift left by 16 (exact).
  static KL_INLINE __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static KL_INLINE __m512 load(const char* p) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static KL_INLINE __m512 load_tail(const char* p, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, p));
  }
};
struct F16W {
  static constexpr size_t kSize = 2;
  static KL_INLINE __m512 load(const char* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static KL_INLINE __m512 load_tail(const char* p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
};

// {Σa, Σb, Σc, Σd}: the lane sums of four vectors in one register (y[t, r..r+3] is contiguous).
KL_INLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
  __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
  __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
  __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a8, b8), _mm256_hadd_ps(c8, d8));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Writes the R x T tile of lane sums: y[t·ldy + r] = Σ lanes of acc[r][t].
template <int R, int T>
KL_INLINE void store_tile(__m512 (&acc)[R][T], float* y, int64_t ldy) {
  if constexpr (R == 4) {
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
      _mm_storeu_ps(y + t * ldy, hsum4(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
  }
}

// Decode-sized calls (one token tile) stream the weights from DRAM with little work per byte; the
// hardware prefetcher alone left ~20-40% of the bandwidth unused on Zen 5 (n = 1..4), so each row
// asks for its bytes kPrefetchBytes ahead. Prefetches past the end of a row never fault.
constexpr size_t kPrefetchBytes = 1024;
template <int R, size_t kStepBytes>
KL_INLINE void prefetch_rows(const char* w, size_t ldw, size_t at) {
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (size_t o = 0; o < kStepBytes; o += 64)
      _mm_prefetch(w + r * ldw + at + kPrefetchBytes + o, _MM_HINT_T0);
}

// One tile over all columns: y[t, r] for R rows (from w, ldw bytes apart) x T tokens. U
// accumulators per (row, token) when R·T alone is too few chains to hide the FMA latency.
template <class W, int R, int T, int U>
KL_INLINE void tile(const char* w, size_t ldw, const float* x, int64_t ldx, int64_t cols, float* y,
                    int64_t ldy, bool stream) {
  __m512 acc[U][R][T];
#pragma GCC unroll 8
  for (int u = 0; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[u][r][t] = _mm512_setzero_ps();

  auto step = [&](int u, int64_t i, auto load) __attribute__((always_inline)) {
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) wv[r] = load(w + r * ldw + size_t(i) * W::kSize);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
      __m512 xv = load.x(x + t * ldx + i);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[u][r][t] = _mm512_fmadd_ps(wv[r], xv, acc[u][r][t]);
    }
  };
  struct Full {
    KL_INLINE __m512 operator()(const char* p) const { return W::load(p); }
    KL_INLINE __m512 x(const float* p) const { return _mm512_loadu_ps(p); }
  };
  struct Tail {
    __mmask16 m;
    KL_INLINE __m512 operator()(const char* p) const { return W::load_tail(p, m); }
    KL_INLINE __m512 x(const float* p) const { return _mm512_maskz_loadu_ps(m, p); }
  };

  int64_t i = 0;
  for (; i + 16 * U <= cols; i += 16 * U) {
    if (stream) prefetch_rows<R, 16 * U * W::kSize>(w, ldw, size_t(i) * W::kSize);
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) step(u, i + 16 * u, Full{});
  }
  for (; i + 16 <= cols; i += 16) step(0, i, Full{});
  if (i < cols) step(0, i, Tail{__mmask16((1u << (cols - i)) - 1)});

#pragma GCC unroll 4
  for (int u = 1; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[0][r][t] = _mm512_add_ps(acc[0][r][t], acc[u][r][t]);
  store_tile<R, T>(acc[0], y, ldy);
}

// Rows [r0, r1) x tokens [t0, t0 + T).
template <class W, int T, int U>
void rows_x_tokens(const MatmulArgs& a, int64_t r0, int64_t r1, int64_t t0, bool stream) {
  const WeightView& w = *a.w;
  const size_t ldw = w.row_bytes();
  const float* x = a.x + t0 * a.ldx;
  float* y = a.y + t0 * a.ldy;
  auto at = [&](int64_t r) { return static_cast<const char*>(w.data) + size_t(r) * ldw; };
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows)
    tile<W, kRows, T, U>(at(r), ldw, x, a.ldx, w.cols, y + r, a.ldy, stream);
  switch (r1 - r) {
    case 1: tile<W, 1, T, U>(at(r), ldw, x, a.ldx, w.cols, y + r, a.ldy, stream); break;
    case 2: tile<W, 2, T, U>(at(r), ldw, x, a.ldx, w.cols, y + r, a.ldy, stream); break;
    case 3: tile<W, 3, T, U>(at(r), ldw, x, a.ldx, w.cols, y + r, a.ldy, stream); break;
    default: break;
  }
}

template <class W>
void rows_x_tokens(int T, const MatmulArgs& a, int64_t r0, int64_t r1, int64_t t0, bool stream) {
  switch (T) {
    case 1: rows_x_tokens<W, 1, 2>(a, r0, r1, t0, stream); break;
    case 2: rows_x_tokens<W, 2, 1>(a, r0, r1, t0, stream); break;
    case 3: rows_x_tokens<W, 3, 1>(a, r0, r1, t0, stream); break;
    case 4: rows_x_tokens<W, 4, 1>(a, r0, r1, t0, stream); break;
    case 5: rows_x_tokens<W, 5, 1>(a, r0, r1, t0, stream); break;
    case 6: rows_x_tokens<W, 6, 1>(a, r0, r1, t0, stream); break;
    default: break;
  }
}

// Rows of one block: as many as fit kRowBlockBytes, a multiple of the tile height.
int64_t row_block(size_t row_bytes) {
  int64_t rb = int64_t(kRowBlockBytes / std::max<size_t>(row_bytes, 1));
  return std::max<int64_t>(kRows, rb / kRows * kRows);
}

// Splits n tokens into tiles of at most kTokens, as even as possible (8 -> 4 + 4, not 6 + 2).
template <class F>
void for_token_tiles(int64_t n, F&& f) {
  int64_t tiles = (n + kTokens - 1) / kTokens;
  for (int64_t k = 0, t0 = 0; k < tiles; k++) {
    int64_t T = (n - t0 + (tiles - k) - 1) / (tiles - k);
    f(t0, int(T));
    t0 += T;
  }
}

template <class W>
void matmul_rows(const MatmulArgs& a, int64_t r0, int64_t r1) {
  if (a.n <= 0 || r1 <= r0) return;
  const int64_t rb = row_block(a.w->row_bytes());
  const bool stream = a.n <= kTokens;  // one token tile: every weight byte read once, from DRAM
  for (int64_t b0 = r0; b0 < r1; b0 += rb) {
    const int64_t b1 = std::min(r1, b0 + rb);
    for_token_tiles(a.n, [&](int64_t t0, int T) { rows_x_tokens<W>(T, a, b0, b1, t0, stream); });
  }
}

// ---- bf16 activations (vdpbf16ps) ----

// x rounded to bf16, one token per ldxb elements, zero-padded to a multiple of 32 so the dot
// steps never need a mask on x.
constexpr int64_t kXbElems = 32 * 1024;  // 64 KiB of stack: ~14 tokens of 2304 columns

// xb[0..cols) = bf16(x[0..cols)), xb[cols..ldxb) = 0. ldxb is a multiple of 32.
void round_to_bf16(const float* x, int64_t cols, int64_t ldxb, uint16_t* xb) {
  for (int64_t i = 0; i < ldxb; i += 32) {
    __m512 lo, hi;
    if (i + 32 <= cols) {
      lo = _mm512_loadu_ps(x + i);
      hi = _mm512_loadu_ps(x + i + 16);
    } else {
      int64_t rem = std::max<int64_t>(0, cols - i);
      __mmask16 mlo = __mmask16(rem >= 16 ? 0xffff : (1u << rem) - 1);
      __mmask16 mhi = __mmask16(rem >= 32 ? 0xffff : rem > 16 ? (1u << (rem - 16)) - 1 : 0);
      lo = _mm512_maskz_loadu_ps(mlo, x + i);
      hi = _mm512_maskz_loadu_ps(mhi, x + i + 16);
    }
    __m512bh h = _mm512_cvtne2ps_pbh(hi, lo);  // lo in the low 16 lanes
    _mm512_storeu_si512(xb + i, reinterpret_cast<__m512i&>(h));
  }
}

KL_INLINE __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

template <int R, int T, int U>
KL_INLINE void tile_dot(const char* w, size_t ldw, const uint16_t* xb, int64_t ldxb, int64_t cols,
                        float* y, int64_t ldy) {
  __m512 acc[U][R][T];
#pragma GCC unroll 8
  for (int u = 0; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[u][r][t] = _mm512_setzero_ps();

  auto step = [&](int u, int64_t i, auto wload) __attribute__((always_inline)) {
    __m512i wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) wv[r] = wload(w + r * ldw + size_t(i) * 2);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
      __m512bh xv = as_bh(_mm512_loadu_si512(xb + t * ldxb + i));
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[u][r][t] = _mm512_dpbf16_ps(acc[u][r][t], as_bh(wv[r]), xv);
    }
  };
  auto full = [](const char* p) __attribute__((always_inline)) { return _mm512_loadu_si512(p); };
  int64_t i = 0;
  for (; i + 32 * U <= cols; i += 32 * U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) step(u, i + 32 * u, full);
  }
  for (; i + 32 <= cols; i += 32) step(0, i, full);
  if (i < cols) {
    const __mmask32 m = __mmask32((1u << (cols - i)) - 1);
    step(
        0, i, [m](const char* p) __attribute__((always_inline)) {
          return _mm512_maskz_loadu_epi16(m, p);
        });
  }

#pragma GCC unroll 4
  for (int u = 1; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[0][r][t] = _mm512_add_ps(acc[0][r][t], acc[u][r][t]);
  store_tile<R, T>(acc[0], y, ldy);
}

struct DotArgs {
  const WeightView* w;
  const uint16_t* xb;  // [T, ldxb] bf16
  int64_t ldxb;
  float* y;  // at token t0
  int64_t ldy;
};

template <int T, int U>
void rows_x_tokens_dot(const DotArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const size_t ldw = w.row_bytes();
  auto at = [&](int64_t r) { return static_cast<const char*>(w.data) + size_t(r) * ldw; };
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows)
    tile_dot<kRows, T, U>(at(r), ldw, a.xb, a.ldxb, w.cols, a.y + r, a.ldy);
  switch (r1 - r) {
    case 1: tile_dot<1, T, U>(at(r), ldw, a.xb, a.ldxb, w.cols, a.y + r, a.ldy); break;
    case 2: tile_dot<2, T, U>(at(r), ldw, a.xb, a.ldxb, w.cols, a.y + r, a.ldy); break;
    case 3: tile_dot<3, T, U>(at(r), ldw, a.xb, a.ldxb, w.cols, a.y + r, a.ldy); break;
    default: break;
  }
}

void rows_x_tokens_dot(int T, const DotArgs& a, int64_t r0, int64_t r1) {
  switch (T) {
    case 1: rows_x_tokens_dot<1, 2>(a, r0, r1); break;
    case 2: rows_x_tokens_dot<2, 1>(a, r0, r1); break;
    case 3: rows_x_tokens_dot<3, 1>(a, r0, r1); break;
    case 4: rows_x_tokens_dot<4, 1>(a, r0, r1); break;
    case 5: rows_x_tokens_dot<5, 1>(a, r0, r1); break;
    case 6: rows_x_tokens_dot<6, 1>(a, r0, r1); break;
    default: break;
  }
}

#undef KL_INLINE

}  // namespace

void matmul_rows_f32(const MatmulArgs& a, int64_t r0, int64_t r1) { matmul_rows<F32W>(a, r0, r1); }
void matmul_rows_bf16(const MatmulArgs& a, int64_t r0, int64_t r1) {
  matmul_rows<BF16W>(a, r0, r1);
}
void matmul_rows_f16(const MatmulArgs& a, int64_t r0, int64_t r1) { matmul_rows<F16W>(a, r0, r1); }

// x is rounded to bf16 a chunk of tokens at a time into a 64 KiB stack buffer (each call converts
// its tokens once; the rows of the call then reuse them). Only rows wider than kXbElems columns
// need a heap buffer of one token.
void matmul_rows_bf16_dot(const MatmulArgs& a, int64_t r0, int64_t r1) {
  if (a.n <= 0 || r1 <= r0) return;
  const WeightView& w = *a.w;
  const int64_t ldxb = (w.cols + 31) / 32 * 32;
  alignas(64) uint16_t stack_buf[kXbElems];
  std::vector<uint16_t> heap_buf;
  uint16_t* xb = stack_buf;
  int64_t chunk = kXbElems / std::max<int64_t>(ldxb, 1);
  if (chunk == 0) {
    heap_buf.resize(size_t(ldxb));
    xb = heap_buf.data();
    chunk = 1;
  } else if (chunk > kTokens) {
    chunk = chunk / kTokens * kTokens;  // whole tiles
  }
  const int64_t rb = row_block(w.row_bytes());
  for (int64_t c0 = 0; c0 < a.n; c0 += chunk) {
    const int64_t nc = std::min(chunk, a.n - c0);
    for (int64_t t = 0; t < nc; t++)
      round_to_bf16(a.x + (c0 + t) * a.ldx, w.cols, ldxb, xb + t * ldxb);
    for (int64_t b0 = r0; b0 < r1; b0 += rb) {
      const int64_t b1 = std::min(r1, b0 + rb);
      for_token_tiles(nc, [&](int64_t t0, int T) {
        DotArgs d{&w, xb + t0 * ldxb, ldxb, a.y + (c0 + t0) * a.ldy, a.ldy};
        rows_x_tokens_dot(T, d, b0, b1);
      });
    }
  }
}

float dot_f32(const float* a, const float* b, int64_t n) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++)
      acc[u] =
          _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16 * u), _mm512_loadu_ps(b + i + 16 * u), acc[u]);
  }
  for (; i + 16 <= n; i += 16)
    acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc[0]);
  if (i < n) {
    __mmask16 m = __mmask16((1u << (n - i)) - 1);
    acc[1] =
        _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc[1]);
  }
  return _mm512_reduce_add_ps(
      _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
  const __m512 va = _mm512_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    __mmask16 m = __mmask16((1u << (n - i)) - 1);
    __m512 v =
        _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
    _mm512_mask_storeu_ps(y + i, m, v);
  }
}

}  // namespace kl::avx512
