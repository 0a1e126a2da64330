// Small element-wise and per-row ops. Memory-light next to the matmuls, so one portable
// version each (the compiler vectorizes the loops).
#pragma once
#include <cmath>
#include <cstdint>

namespace kl {

// y[i] = w[i] * x[i] / sqrt(mean(x²) + eps); in place allowed (y == x).
void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* y);
// Per-row rmsnorm over `rows` rows of width n (row stride ld for x and y).
void rmsnorm_rows(const float* x, int64_t ldx, const float* w, float eps, int64_t rows, int64_t n, float* y,
                  int64_t ldy);

inline float sigmoidf(float x) { return 1.f / (1.f + std::exp(-x)); }
inline float siluf(float x) { return x / (1.f + std::exp(-x)); }
// torch.nn.functional.softplus with beta=1, threshold=20.
inline float softplusf(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }

// g[i] = SiLU(g[i]) * u[i]  (SwiGLU combine, in place on g).
void swiglu(float* g, const float* u, int64_t n);

// x /= sqrt(Σ x² + eps) (eps inside the sqrt, spec §3.5), then x *= scale.
void l2norm_scale(float* x, int64_t n, float eps, float scale);

// y[j] += Σ_r x[r] · W[r, j] for a row-major fp32 matrix W [rows, cols] (transposed product).
void matvec_t_f32(const float* W, int64_t rows, int64_t cols, const float* x, float* y);

}  // namespace kl
