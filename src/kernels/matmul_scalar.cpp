// Scalar twins: the definition of each op that the fast versions are tested against.
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/scalar_impl.h"

namespace kl::scalar {

namespace {
template <class Load>
void matmul_rows_generic(const MatmulArgs& a, int64_t r0, int64_t r1, Load load) {
  const WeightView& w = *a.w;
  for (int64_t r = r0; r < r1; r++) {
    const void* row = w.row(r);
    for (int64_t t = 0; t < a.n; t++) {
      const float* x = a.x + t * a.ldx;
      float acc = 0.f;
      for (int64_t i = 0; i < w.cols; i++) acc += load(row, i) * x[i];
      a.y[t * a.ldy + r] = acc;
    }
  }
}
}  // namespace

void matmul_rows_f32(const MatmulArgs& a, int64_t r0, int64_t r1) {
  matmul_rows_generic(a, r0, r1, [](const void* row, int64_t i) {
    float v;
    std::memcpy(&v, static_cast<const char*>(row) + 4 * i, 4);
    return v;
  });
}

void matmul_rows_bf16(const MatmulArgs& a, int64_t r0, int64_t r1) {
  matmul_rows_generic(a, r0, r1, [](const void* row, int64_t i) {
    uint16_t h;
    std::memcpy(&h, static_cast<const char*>(row) + 2 * i, 2);
    return bf16_to_f32(h);
  });
}

void matmul_rows_f16(const MatmulArgs& a, int64_t r0, int64_t r1) {
  matmul_rows_generic(a, r0, r1, [](const void* row, int64_t i) {
    uint16_t h;
    std::memcpy(&h, static_cast<const char*>(row) + 2 * i, 2);
    return f16_to_f32(h);
  });
}

// The spec of the bf16-dot path: x rounded to bf16 (nearest even), exact bf16·bf16 products,
// fp32 accumulation.
void matmul_rows_bf16_dot(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  for (int64_t r = r0; r < r1; r++) {
    const char* row = static_cast<const char*>(w.row(r));
    for (int64_t t = 0; t < a.n; t++) {
      const float* x = a.x + t * a.ldx;
      float acc = 0.f;
      for (int64_t i = 0; i < w.cols; i++) {
        uint16_t h;
        std::memcpy(&h, row + 2 * i, 2);
        acc += bf16_to_f32(h) * bf16_to_f32(f32_to_bf16(x[i]));
      }
      a.y[t * a.ldy + r] = acc;
    }
  }
}

float dot_f32(const float* a, const float* b, int64_t n) {
  float acc = 0.f;
  for (int64_t i = 0; i < n; i++) acc += a[i] * b[i];
  return acc;
}

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

}  // namespace kl::scalar
