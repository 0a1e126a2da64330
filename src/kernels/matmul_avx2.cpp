// AVX2/FMA/F16C matmul kernels: y[t, r] = Σ_i W[r, i]·x[t, i] (spec: the scalar twins in
// matmul_scalar.cpp). Same scheme as matmul_avx512.cpp with 8 lanes and 16 registers:
// - decode (n <= 3, one token tile): each weight read once, with software prefetch; for n = 1,
//   4 rows with two accumulators each (8 FMA chains);
// - prompts: tiles of 4 rows x up to 3 tokens (12 accumulators + 3 activations + 1 weight), over
//   a block of rows that fits in L2.
// Columns past the last multiple of 8 are added in scalar code (AVX2 has no 16-bit masked loads).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/row_tiles.h"
#include "kernels/stream_prefetch.h"
#include "kernels/x86_impl.h"

namespace kl::avx2 {

namespace {

// The tile code must be inlined whole: an accumulator array that escapes into a call (a lambda
// or store helper the compiler chose not to inline) lives in memory instead of registers.
#define KL_INLINE inline __attribute__((always_inline))

constexpr int kRows = 4;
constexpr int kTokens = 3;
// Weight bytes of one row block: half of a 512 KiB..2 MiB L2, leaving the rest for the x tiles.
constexpr size_t kRowBlockBytes = 256 * 1024;

// Weight formats: 8 consecutive weights at byte address p widened to fp32, and one weight.
struct F32W {
  static constexpr size_t kSize = 4;
  static KL_INLINE __m256 load(const char* p) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  }
  static float one(const char* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
};
struct BF16W {
  static constexpr size_t kSize = 2;
  static KL_INLINE __m256 load(const char* p) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float one(const char* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return bf16_to_f32(h);
  }
};
struct F16W {
  static constexpr size_t kSize = 2;
  static KL_INLINE __m256 load(const char* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float one(const char* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
  }
};

KL_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// {Σa, Σb, Σc, Σd} in one register.
KL_INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

using stream_prefetch::Stream;  // decode-sized calls: see kernels/stream_prefetch.h

template <class W, int R, int T, int U>
KL_INLINE void tile(const char* w, size_t ldw, const float* x, int64_t ldx, int64_t cols, float* y,
                    int64_t ldy, const Stream& stream) {
  __m256 acc[U][R][T];
#pragma GCC unroll 8
  for (int u = 0; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[u][r][t] = _mm256_setzero_ps();

  // T activations held, one weight vector at a time: R·T + T + 1 <= 16 registers.
  auto step = [&](int u, int64_t i) __attribute__((always_inline)) {
    __m256 xv[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_ps(x + t * ldx + i);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      __m256 wv = W::load(w + r * ldw + size_t(i) * W::kSize);
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[u][r][t] = _mm256_fmadd_ps(wv, xv[t], acc[u][r][t]);
    }
  };
  // The tile's R rows are consumed side by side: R·8·U weights per step, read as one stretch of
  // the call's bytes that starts at row 0 of the tile and moves R times as fast as a row.
  const char* ahead = w;
  int64_t i = 0;
  for (; i + 8 * U <= cols; i += 8 * U) {
    if (stream.end) {
      stream_prefetch::ahead<R * 8 * U * W::kSize, R>(ahead, stream);
      ahead += R * 8 * U * W::kSize;
    }
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) step(u, i + 8 * u);
  }
  for (; i + 8 <= cols; i += 8) step(0, i);

#pragma GCC unroll 4
  for (int u = 1; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[0][r][t] = _mm256_add_ps(acc[0][r][t], acc[u][r][t]);

  float s[R][T];
  if constexpr (R == 4) {
    for (int t = 0; t < T; t++) {
      alignas(16) float v[4];
      _mm_store_ps(v, hsum4(acc[0][0][t], acc[0][1][t], acc[0][2][t], acc[0][3][t]));
      for (int r = 0; r < 4; r++) s[r][t] = v[r];
    }
  } else {
    for (int r = 0; r < R; r++)
      for (int t = 0; t < T; t++) s[r][t] = hsum(acc[0][r][t]);
  }
  for (; i < cols; i++) {  // the last cols % 8 columns
    for (int r = 0; r < R; r++) {
      float wr = W::one(w + r * ldw + size_t(i) * W::kSize);
      for (int t = 0; t < T; t++) s[r][t] += wr * x[t * ldx + i];
    }
  }
  for (int t = 0; t < T; t++)
    for (int r = 0; r < R; r++) y[t * ldy + r] = s[r][t];
}

// Rows [r0, r1) x tokens [t0, t0 + T). One token: one row at a time, in address order (see
// matmul_avx512.cpp), long rows two at a time; more: tiles of kRows rows.
template <class W>
void rows_x_tokens(int T, const MatmulArgs& a, int64_t r0, int64_t r1, int64_t t0, const Stream& stream) {
  const char* w = static_cast<const char*>(a.w->data);
  const size_t ldw = a.w->row_bytes();
  const float* x = a.x + t0 * a.ldx;
  float* y = a.y + t0 * a.ldy;
  if (T == 1 && a.w->cols > row_tiles::kLongRowCols) {  // long rows: 2 at a time (row_tiles.h)
    row_tiles::for_row_tiles<2>(r0, r1, [&]<int Rn>(int64_t r) {
      tile<W, Rn, 1, 4>(w + size_t(r) * ldw, ldw, x, a.ldx, a.w->cols, y + r, a.ldy, stream);
    });
    return;
  }
  row_tiles::with_count<kTokens>(T, [&]<int Tn>() {
    constexpr int R = Tn == 1 ? 1 : kRows, U = Tn == 1 ? 4 : 1;
    row_tiles::for_row_tiles<R>(r0, r1, [&]<int Rn>(int64_t r) {
      tile<W, Rn, Tn, U>(w + size_t(r) * ldw, ldw, x, a.ldx, a.w->cols, y + r, a.ldy, stream);
    });
  });
}

template <class W>
void matmul_rows(const MatmulArgs& a, int64_t r0, int64_t r1) {
  if (a.n <= 0 || r1 <= r0) return;
  Stream stream;  // one token tile: every weight byte read once, from DRAM
  if (a.n <= kTokens) stream.end = static_cast<const char*>(a.w->row(r1));
  const int64_t rb = row_tiles::row_block(a.w->row_bytes(), kRowBlockBytes, kRows);
  row_tiles::for_blocks(r0, r1, rb, a.n, kTokens, [&](int64_t b0, int64_t b1, int64_t t0, int T) {
    rows_x_tokens<W>(T, a, b0, b1, t0, stream);
  });
}

#undef KL_INLINE

}  // namespace

void matmul_rows_f32(const MatmulArgs& a, int64_t r0, int64_t r1) { matmul_rows<F32W>(a, r0, r1); }
void matmul_rows_bf16(const MatmulArgs& a, int64_t r0, int64_t r1) {
  matmul_rows<BF16W>(a, r0, r1);
}
void matmul_rows_f16(const MatmulArgs& a, int64_t r0, int64_t r1) { matmul_rows<F16W>(a, r0, r1); }

float dot_f32(const float* a, const float* b, int64_t n) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++)
      acc[u] =
          _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * u), _mm256_loadu_ps(b + i + 8 * u), acc[u]);
  }
  for (; i + 8 <= n; i += 8)
    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc[0]);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; i++) y[i] += alpha * x[i];
}

}  // namespace kl::avx2
