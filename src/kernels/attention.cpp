#include "kernels/attention.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/thread_pool.h"

namespace kl {

namespace {
void attend_one(const Context& ctx, const LatentAttnArgs& a, int64_t i, int64_t h) {
  const float* q = a.q + (i * a.H + h) * a.kv_dim;
  float* o = a.out + (i * a.H + h) * a.v_dim;
  std::memset(o, 0, sizeof(float) * size_t(a.v_dim));
  const int64_t n_ctx = a.ctx0 + i + 1;
  float m = -std::numeric_limits<float>::infinity();
  float l = 0.f;
  for (int64_t t = 0; t < n_ctx; t++) {
    const float* row = a.pages[t / a.page_rows] + (t % a.page_rows) * a.kv_dim;
    const float s = ctx.k->dot_f32(q, row, a.kv_dim);
    if (s > m) {  // rescale what has been accumulated so far
      const float r = std::exp(m - s);
      l *= r;
      for (int64_t e = 0; e < a.v_dim; e++) o[e] *= r;
      m = s;
    }
    const float p = std::exp(s - m);
    l += p;
    ctx.k->axpy_f32(p, row, o, a.v_dim);
  }
  const float inv = 1.f / l;
  for (int64_t e = 0; e < a.v_dim; e++) o[e] *= inv;
}
}  // namespace

void latent_attention(const Context& ctx, const LatentAttnArgs& a) {
  const int64_t n = a.n_q * a.H;
  auto body = [&](int64_t task, int) { attend_one(ctx, a, task / a.H, task % a.H); };
  if (ctx.pool) {
    ctx.pool->parallel_for(n, body);
  } else {
    for (int64_t t = 0; t < n; t++) body(t, 0);
  }
}

}  // namespace kl
