#include "kernels/ops.h"

namespace kl {

void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* y) {
  double ss = 0;  // fp64 sum: stable for wide rows, cheap next to the matmuls
  for (int64_t i = 0; i < n; i++) ss += double(x[i]) * x[i];
  float inv = float(1.0 / std::sqrt(ss / double(n) + eps));
  for (int64_t i = 0; i < n; i++) y[i] = w[i] * (x[i] * inv);
}

void rmsnorm_rows(const float* x, int64_t ldx, const float* w, float eps, int64_t rows, int64_t n, float* y,
                  int64_t ldy) {
  for (int64_t r = 0; r < rows; r++) rmsnorm(x + r * ldx, w, eps, n, y + r * ldy);
}

void swiglu(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; i++) g[i] = siluf(g[i]) * u[i];
}

void l2norm_scale(float* x, int64_t n, float eps, float scale) {
  double ss = 0;
  for (int64_t i = 0; i < n; i++) ss += double(x[i]) * x[i];
  float f = float(scale / std::sqrt(ss + eps));
  for (int64_t i = 0; i < n; i++) x[i] *= f;
}

void matvec_t_f32(const float* W, int64_t rows, int64_t cols, const float* x, float* y) {
  for (int64_t r = 0; r < rows; r++) {
    const float xr = x[r];
    const float* w = W + r * cols;
    for (int64_t j = 0; j < cols; j++) y[j] += xr * w[j];
  }
}

}  // namespace kl
