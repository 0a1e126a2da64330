// Scalar twins of the tile ops (the spec of gemm_f32 and online_softmax_f32, tile_ops.h).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/dtype.h"
#include "kernels/tile_ops_impl.h"

namespace kl::scalar {

void gemm_f32(const GemmF32Args& g) {
  // Each C[m, n] sums its K products in order; columns go in blocks so B is read row-wise.
  constexpr int64_t kBlock = 64;
  float acc[kBlock];
  for (int64_t m = 0; m < g.M; m++) {
    float* c = g.c + m * g.ldc;
    const float keep = g.row_scale ? g.row_scale[m] : 1.f;
    for (int64_t n0 = 0; n0 < g.N; n0 += kBlock) {
      const int64_t nb = std::min(kBlock, g.N - n0);
      std::fill(acc, acc + nb, 0.f);
      for (int64_t k = 0; k < g.K; k++) {
        const float a = g.a[m * g.a_rs + k * g.a_cs];
        const float* b = g.b + k * g.ldb + n0;
        for (int64_t n = 0; n < nb; n++) acc[n] += a * b[n];
      }
      for (int64_t n = 0; n < nb; n++) c[n0 + n] = g.accumulate ? keep * c[n0 + n] + acc[n] : acc[n];
    }
  }
}

void gemm_bf16(const GemmBf16Args& g) {
  // As gemm_f32: each C[m, n] sums its K (exact) products in order.
  constexpr int64_t kBlock = 64;
  float acc[kBlock];
  for (int64_t m = 0; m < g.M; m++) {
    float* c = g.c + m * g.ldc;
    const uint16_t* a = g.K > 0 ? g.a + m * g.lda : nullptr;  // K = 0 may come with a null a
    const float keep = g.row_scale ? g.row_scale[m] : 1.f;
    for (int64_t n0 = 0; n0 < g.N; n0 += kBlock) {
      const int64_t nb = std::min(kBlock, g.N - n0);
      std::fill(acc, acc + nb, 0.f);
      for (int64_t k = 0; k < g.K; k++) {
        const float av = bf16_to_f32(a[k]);
        const uint16_t* b = g.b + (k / 2) * g.ldb + 2 * n0 + k % 2;
        for (int64_t n = 0; n < nb; n++) acc[n] += av * bf16_to_f32(b[2 * n]);
      }
      for (int64_t n = 0; n < nb; n++) c[n0 + n] = g.accumulate ? keep * c[n0 + n] + acc[n] : acc[n];
    }
  }
}

void pack_bf16_rows(const PackBf16Args& p) {
  for (int64_t r = 0; r < p.rows; r++) {
    uint16_t* d = p.dst + r * p.ldd;
    for (int64_t c = 0; c < p.cols; c++) d[c] = f32_to_bf16(p.src[r * p.rs + c * p.cs]);
    if (p.cols % 2) d[p.cols] = 0;
  }
}

void pack_bf16_pairs(const PackBf16Args& p) {
  for (int64_t r = 0; r < p.rows + p.rows % 2; r++) {
    uint16_t* d = p.dst + (r / 2) * p.ldd + r % 2;
    for (int64_t c = 0; c < p.cols; c++) d[2 * c] = r < p.rows ? f32_to_bf16(p.src[r * p.rs + c * p.cs]) : 0;
  }
}

void interleave_bf16_pairs(const InterleaveBf16Args& p) {
  for (int64_t r = 0; r < p.rows + p.rows % 2; r++) {
    uint16_t* d = p.dst + (r / 2) * p.ldd + r % 2;
    for (int64_t c = 0; c < p.cols; c++) d[2 * c] = r < p.rows ? p.src[r * p.rs + c] : 0;
  }
}

void online_softmax_f32(const OnlineSoftmaxArgs& a) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < a.n_cols; j++) {
    // Keys r < visible are seen by this column.
    const int64_t visible = std::clamp<int64_t>(a.vis0 + j / a.cols_per_step - a.key0, 0, a.n_keys);
    float mt = neg_inf;
    for (int64_t r = 0; r < visible; r++) mt = std::max(mt, a.s[r * a.ld + j]);
    const float m_new = std::max(a.m[j], mt);
    // A column that has seen only -inf scores (or none) keeps weights 0: exp(-inf - 0), where
    // exp(-inf - m_new) would be exp(NaN).
    const float m_sub = m_new == neg_inf ? 0.f : m_new;
    float sum = 0.f;
    for (int64_t r = 0; r < a.n_keys; r++) {
      float& s = a.s[r * a.ld + j];
      s = r < visible ? std::exp(s - m_sub) : 0.f;
      sum += s;
    }
    const float alpha = m_new == neg_inf ? 1.f : std::exp(a.m[j] - m_new);
    a.alpha[j] = alpha;
    a.l[j] = alpha * a.l[j] + sum;
    a.m[j] = m_new;
  }
}

}  // namespace kl::scalar
