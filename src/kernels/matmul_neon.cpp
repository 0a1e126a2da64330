// AArch64 NEON matmul kernels: y[t, r] = Σ_i W[r, i]·x[t, i] (spec: the scalar twins in
// matmul_scalar.cpp). Same scheme as matmul_avx2.cpp with 4 lanes and 32 registers:
// - decode (n = 1, bandwidth bound): the rows one after another, in address order, four
//   accumulators per row, with a software prefetch along the call's bytes;
// - n >= 2: tiles of 4 rows x up to 4 tokens (16 accumulators + 4 activations + 1 weight of the
//   32 registers), over a block of rows that fits in L2 and is reused by every token tile.
// Columns past the last multiple of 4 are added in scalar code, so no load reads past a row.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "kernels/neon_impl.h"
#include "kernels/row_tiles.h"

namespace kl::neon {

namespace {

// The tile code must be inlined whole: an accumulator array that escapes into a call lives in
// memory instead of registers.
#define KL_INLINE inline __attribute__((always_inline))

constexpr int kRows = 4;
constexpr int kTokens = 4;
// Weight bytes of one row block: half of a 1-2 MiB L2 (typical of Neoverse and Apple cores),
// leaving the rest for the x tiles.
constexpr size_t kRowBlockBytes = 256 * 1024;
// How far ahead of the current row position the decode path asks for weight bytes. The cores'
// own prefetchers follow a sequential stream well; this only keeps a few lines more in flight.
constexpr size_t kPrefetchAhead = 4096;

// Weight formats: 4 consecutive weights at byte address p widened to fp32, and one weight. Rows
// may start at any byte address, so the vector loads go through bytes (vld1q_u8 has no
// alignment requirement, where a cast to uint16_t*/float* would claim one).
struct F32W {
  static constexpr size_t kSize = 4;
  static KL_INLINE float32x4_t load(const char* p) {
    return vreinterpretq_f32_u8(vld1q_u8(reinterpret_cast<const uint8_t*>(p)));
  }
  static float one(const char* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
};
struct BF16W {
  static constexpr size_t kSize = 2;
  // bf16 is the top half of an fp32: widen to 32 bits shifted left by 16 (exact).
  static KL_INLINE float32x4_t load(const char* p) {
    uint16x4_t h = vreinterpret_u16_u8(vld1_u8(reinterpret_cast<const uint8_t*>(p)));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
  }
  static float one(const char* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return bf16_to_f32(h);
  }
};
struct F16W {
  static constexpr size_t kSize = 2;
  static KL_INLINE float32x4_t load(const char* p) {
    float16x4_t h = vreinterpret_f16_u8(vld1_u8(reinterpret_cast<const uint8_t*>(p)));
    return vcvt_f32_f16(h);
  }
  static float one(const char* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
  }
};

// One row against one token (decode). Four independent accumulators so the FMA latency is hidden.
// `end`: one past the call's last weight byte; prefetches stop there.
template <class W>
KL_INLINE float row_dot(const char* w, const float* x, int64_t cols, const char* end) {
  float32x4_t acc[4] = {vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f)};
  int64_t i = 0;
  for (; i + 16 <= cols; i += 16) {
    const char* p = w + size_t(i) * W::kSize;
    if (p + kPrefetchAhead < end) __builtin_prefetch(p + kPrefetchAhead);
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++)
      acc[u] = vfmaq_f32(acc[u], W::load(p + 4 * u * W::kSize), vld1q_f32(x + i + 4 * u));
  }
  for (; i + 4 <= cols; i += 4)
    acc[0] = vfmaq_f32(acc[0], W::load(w + size_t(i) * W::kSize), vld1q_f32(x + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < cols; i++) s += W::one(w + size_t(i) * W::kSize) * x[i];  // the last cols % 4
  return s;
}

template <class W>
void rows_one_token(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const size_t ldw = w.row_bytes();
  const char* base = static_cast<const char*>(w.data);
  const char* end = base + size_t(r1) * ldw;
  for (int64_t r = r0; r < r1; r++) a.y[r] = row_dot<W>(base + size_t(r) * ldw, a.x, w.cols, end);
}

// R rows x T tokens: each step loads T activation vectors and R weight vectors, R·T FMAs.
template <class W, int R, int T>
KL_INLINE void tile(const char* w, size_t ldw, const float* x, int64_t ldx, int64_t cols, float* y,
                    int64_t ldy) {
  float32x4_t acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) acc[r][t] = vdupq_n_f32(0.f);
  int64_t i = 0;
  for (; i + 4 <= cols; i += 4) {
    float32x4_t xv[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) xv[t] = vld1q_f32(x + t * ldx + i);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      float32x4_t wv = W::load(w + r * ldw + size_t(i) * W::kSize);
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[r][t] = vfmaq_f32(acc[r][t], wv, xv[t]);
    }
  }
  float s[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) s[r][t] = vaddvq_f32(acc[r][t]);
  for (; i < cols; i++) {  // the last cols % 4 columns
    for (int r = 0; r < R; r++) {
      float wr = W::one(w + r * ldw + size_t(i) * W::kSize);
      for (int t = 0; t < T; t++) s[r][t] += wr * x[t * ldx + i];
    }
  }
  for (int t = 0; t < T; t++)
    for (int r = 0; r < R; r++) y[t * ldy + r] = s[r][t];
}

// Rows [r0, r1) x tokens [t0, t0 + T), in tiles of kRows rows.
template <class W>
void rows_x_tokens(int T, const MatmulArgs& a, int64_t r0, int64_t r1, int64_t t0) {
  const char* w = static_cast<const char*>(a.w->data);
  const size_t ldw = a.w->row_bytes();
  const float* x = a.x + t0 * a.ldx;
  float* y = a.y + t0 * a.ldy;
  row_tiles::with_count<kTokens>(T, [&]<int Tn>() {
    row_tiles::for_row_tiles<kRows>(r0, r1, [&]<int Rn>(int64_t r) {
      tile<W, Rn, Tn>(w + size_t(r) * ldw, ldw, x, a.ldx, a.w->cols, y + r, a.ldy);
    });
  });
}

template <class W>
void matmul_rows(const MatmulArgs& a, int64_t r0, int64_t r1) {
  if (a.n <= 0 || r1 <= r0) return;
  if (a.n == 1) {
    rows_one_token<W>(a, r0, r1);
    return;
  }
  const int64_t rb = row_tiles::row_block(a.w->row_bytes(), kRowBlockBytes, kRows);
  row_tiles::for_blocks(r0, r1, rb, a.n, kTokens, [&](int64_t b0, int64_t b1, int64_t t0, int T) {
    rows_x_tokens<W>(T, a, b0, b1, t0);
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
  float32x4_t acc[4] = {vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f)};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++)
      acc[u] = vfmaq_f32(acc[u], vld1q_f32(a + i + 4 * u), vld1q_f32(b + i + 4 * u));
  }
  for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], vld1q_f32(a + i), vld1q_f32(b + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
  const float32x4_t va = vdupq_n_f32(alpha);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), va, vld1q_f32(x + i)));
  for (; i < n; i++) y[i] += alpha * x[i];
}

}  // namespace kl::neon
