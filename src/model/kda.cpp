// KDA mixer (spec §3): projections, short convs, gates, the delta-rule core, gated norm, o_proj.
#include <cmath>
#include <cstring>

#include "core/thread_pool.h"
#include "kernels/kda.h"
#include "kernels/ops.h"
#include "model/blocks.h"

namespace kl {

namespace {

// Causal depthwise conv + SiLU over one run, in place on raw projections x [n, P] (row stride
// P), with the W-1 previous raw rows in `hist` [W-1, P] (oldest first), updated to the last
// W-1 raw rows (spec §3.2: tap W-1 multiplies the current token).
// `newhist` is scratch of [W-1, P].
void short_conv_silu(float* x, int64_t n, int64_t P, const float* taps, int64_t W, float* hist,
                     float* newhist) {
  const int64_t Hn = W - 1;
  for (int64_t j = 0; j < Hn; j++) {  // the last Hn raw rows of (history ++ x)
    int64_t t = n - Hn + j;
    const float* src = t >= 0 ? x + t * P : hist + (t + Hn) * P;
    std::memcpy(newhist + j * P, src, sizeof(float) * size_t(P));
  }
  // Backwards, so each output overwrites a raw row that no earlier output still needs.
  for (int64_t t = n - 1; t >= 0; t--) {
    float* y = x + t * P;
    for (int64_t c = 0; c < P; c++) {
      const float* w = taps + c * W;
      float acc = w[W - 1] * y[c];
      for (int64_t j = 1; j < W; j++) {  // tap W-1-j multiplies input t-j
        int64_t s = t - j;
        float in = s >= 0 ? x[s * P + c] : hist[(s + Hn) * P + c];
        acc += w[W - 1 - j] * in;
      }
      y[c] = siluf(acc);
    }
  }
  std::memcpy(hist, newhist, sizeof(float) * size_t(Hn * P));
}

}  // namespace

void kda_forward(const BlockIO& io, const KdaWeights& w, int64_t slot) {
  const Context& ctx = *io.ctx;
  const KimiConfig& c = *io.cfg;
  Workspace& ws = *io.ws;
  const int64_t T = io.T, H = c.kda_num_heads, D = c.kda_head_dim, P = c.kda_proj_dim();
  const int64_t W = c.short_conv_kernel_size;

  // spec §3.1: per-token projections, all tokens of the batch at once.
  // Everything that reads x in one threaded call, then the second halves of the low-rank gates.
  float* f_low = ws.klow.data();         // [T, D]
  float* g_low = ws.klow.data() + T * D;  // [T, D]
  const int64_t hid = c.hidden_size;
  const MatmulJob from_x[6] = {
      {&w.q_proj, io.x, T, hid, ws.kq.data(), P},  {&w.k_proj, io.x, T, hid, ws.kk.data(), P},
      {&w.v_proj, io.x, T, hid, ws.kv.data(), P},  {&w.f_a_proj, io.x, T, hid, f_low, D},
      {&w.g_a_proj, io.x, T, hid, g_low, D},       {&w.b_proj, io.x, T, hid, ws.kbeta.data(), H}};
  matmul_batch(ctx, from_x, 6);
  const MatmulJob from_low[2] = {{&w.f_b_proj, f_low, T, D, ws.kg.data(), P},   // z [T, P]
                                 {&w.g_b_proj, g_low, T, D, ws.kr.data(), P}};  // r [T, P]
  matmul_batch(ctx, from_low, 2);

  // spec §3.3-3.4: log decay g = -exp(A_log[h]) softplus(z + dt_bias), beta = sigmoid(b).
  for (int64_t t = 0; t < T; t++) {
    float* g = ws.kg.data() + t * P;
    for (int64_t h = 0; h < H; h++) {
      const float a = std::exp(w.A_log[size_t(h)]);
      for (int64_t d = 0; d < D; d++) {
        const int64_t ch = h * D + d;
        g[ch] = -a * softplusf(g[ch] + w.dt_bias[size_t(ch)]);
      }
    }
    float* b = ws.kbeta.data() + t * H;
    for (int64_t h = 0; h < H; h++) b[h] = sigmoidf(b[h]);
  }

  for (const RunSpan& run : io.runs) {
    KdaLayerState& st = run.state->kda[size_t(slot)];
    const int64_t Hn = W - 1;
    // spec §3.2: the three short convs with SiLU, each with its own history.
    short_conv_silu(ws.kq.data() + run.offset * P, run.n, P, w.q_conv.data(), W, st.conv.data(),
                    ws.kconv.data());
    short_conv_silu(ws.kk.data() + run.offset * P, run.n, P, w.k_conv.data(), W, st.conv.data() + Hn * P,
                    ws.kconv.data());
    short_conv_silu(ws.kv.data() + run.offset * P, run.n, P, w.v_conv.data(), W,
                    st.conv.data() + 2 * Hn * P, ws.kconv.data());
  }

  // spec §3.5: L2 norm per head (eps inside the sqrt), q scaled by D^-1/2 after the norm.
  const float qscale = 1.f / std::sqrt(float(D));
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < H; h++) {
      l2norm_scale(ws.kq.data() + t * P + h * D, D, 1e-6f, qscale);
      l2norm_scale(ws.kk.data() + t * P + h * D, D, 1e-6f, 1.f);
    }

  // spec §3.6 / §3.8: the delta rule per run; chunked for prompts, recurrent for short runs
  // (the reference switches at 64 tokens; both agree to fp32 rounding).
  for (const RunSpan& run : io.runs) {
    KdaSeqArgs a;
    a.T = run.n;
    a.H = H;
    a.K = D;
    a.V = D;
    a.q = ws.kq.data() + run.offset * P;
    a.k = ws.kk.data() + run.offset * P;
    a.v = ws.kv.data() + run.offset * P;
    a.g = ws.kg.data() + run.offset * P;
    a.beta = ws.kbeta.data() + run.offset * H;
    a.ld_qkg = P;
    a.ld_v = P;
    a.state = run.state->kda[size_t(slot)].recurrent.data();
    a.out = ws.ko.data() + run.offset * P;
    const bool chunked = run.n > kKdaChunk;
    ctx.pool->parallel_for(H, [&](int64_t h, int thread) {
      if (chunked)
        ctx.k->kda_chunk_head(a, h, ws.kda_chunk_scratch.data() + size_t(thread) * ws.kda_chunk_floats);
      else
        ctx.k->kda_recurrent_head(a, h);
    });
  }

  // spec §3.7: per-head RMSNorm (shared weight) times sigmoid(r), then o_proj.
  const float eps = float(c.rms_norm_eps);
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < H; h++) {
      float* o = ws.ko.data() + t * P + h * D;
      const float* r = ws.kr.data() + t * P + h * D;
      rmsnorm(o, w.o_norm.data(), eps, D, o);
      for (int64_t d = 0; d < D; d++) o[d] *= sigmoidf(r[d]);
    }
  matmul(ctx, w.o_proj, ws.ko.data(), T, io.out);
}

}  // namespace kl
