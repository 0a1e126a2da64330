// Register-only loop for the peak-throughput measurement (machine_limits.cpp), AArch64 NEON part.
#include <arm_neon.h>

#include "kernels/neon_impl.h"

namespace kl::neon {

namespace {
// Independent chains: more than latency x pipes (4 cycles x up to 4 FMA pipes on the widest
// cores) so the loop is bound by throughput only; 16 of the 32 registers, the rest for operands.
constexpr int kChains = 16;
}  // namespace

double fma_loop(int64_t iters, float* sink) {
  float32x4_t acc[kChains];
  for (int k = 0; k < kChains; k++) acc[k] = vdupq_n_f32(float(k));
  // acc = acc·b + c converges to c / (1 - b): no overflow, no denormals, whatever iters is.
  const float32x4_t b = vdupq_n_f32(0.999f), c = vdupq_n_f32(0.001f);
  for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
    for (int k = 0; k < kChains; k++) acc[k] = vfmaq_f32(c, acc[k], b);
  }
  float32x4_t s = acc[0];
  for (int k = 1; k < kChains; k++) s = vaddq_f32(s, acc[k]);
  *sink = vaddvq_f32(s);
  return double(iters) * kChains * 4 * 2;
}

}  // namespace kl::neon
