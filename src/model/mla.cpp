// MLA mixer without positional encoding (spec §4): the cache holds the normalized latent and
// the shared key part; attention runs in the absorbed form over that cache (spec §4.3).
#include <cmath>
#include <cstring>

#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
#include "model/blocks.h"

namespace kl {

void mla_forward(const BlockIO& io, const MlaWeights& w, int64_t slot) {
  const Context& ctx = *io.ctx;
  const KimiConfig& c = *io.cfg;
  Workspace& ws = *io.ws;
  const int64_t T = io.T, Hq = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, dq = c.mla_q_head_dim();
  const int64_t lat = c.kv_lora_rank, cw = c.mla_cache_width(), vd = c.v_head_dim;
  const int64_t kvb_head = nope + vd;  // rows of kv_b_proj per head

  // spec §4.1: q [T, Hq*dq]; kv_a -> [latent c | k_pe].
  matmul(ctx, w.q_proj, io.x, T, ws.mq.data());
  matmul(ctx, w.kv_a_proj_with_mqa, io.x, T, ws.mkva.data());  // [T, c + r]
  // kv_a_layernorm eps is 1e-6 in the reference code (spec Decisions 2).
  for (int64_t t = 0; t < T; t++) {
    float* row = ws.mkva.data() + t * cw;
    rmsnorm(row, w.kv_a_layernorm.data(), 1e-6f, lat, row);
  }
  // Append this batch's rows to each sequence's cache (NoPE: rows are position-free).
  for (const RunSpan& run : io.runs) {
    LatentCache& cache = run.state->mla[size_t(slot)];
    cache.resize(run.pos0 + run.n);
    for (int64_t i = 0; i < run.n; i++)
      std::memcpy(cache.row_mut(run.pos0 + i), ws.mkva.data() + (run.offset + i) * cw, sizeof(float) * size_t(cw));
  }

  // Absorbed query per head: [W_UK(h)ᵀ q_nope ; q_pe] · softmax scale (spec §4.3, §4.2).
  const float scale = 1.f / std::sqrt(float(dq));
  ctx.pool->parallel_for(Hq, [&](int64_t h, int thread) {
    float* rowbuf = ws.mrowbuf.data() + size_t(thread) * size_t(lat);
    const WeightView uk = w.kv_b_proj.slice_rows(h * kvb_head, nope);  // [nope, c]
    for (int64_t t = 0; t < T; t++) std::memset(ws.mqabs.data() + (t * Hq + h) * cw, 0, sizeof(float) * size_t(lat));
    for (int64_t r = 0; r < nope; r++) {
      convert_to_f32(uk.dtype, uk.row(r), rowbuf, size_t(lat));
      for (int64_t t = 0; t < T; t++) {
        const float qn = ws.mq.data()[t * Hq * dq + h * dq + r];
        float* qa = ws.mqabs.data() + (t * Hq + h) * cw;
        for (int64_t j = 0; j < lat; j++) qa[j] += qn * rowbuf[j];
      }
    }
    for (int64_t t = 0; t < T; t++) {
      float* qa = ws.mqabs.data() + (t * Hq + h) * cw;
      const float* qp = ws.mq.data() + t * Hq * dq + h * dq + nope;
      for (int64_t j = 0; j < lat; j++) qa[j] *= scale;
      for (int64_t j = 0; j < rope; j++) qa[lat + j] = qp[j] * scale;
    }
  });

  // Attention over each sequence's cache: latent outputs l_h [T, Hq, c].
  for (const RunSpan& run : io.runs) {
    const LatentCache& cache = run.state->mla[size_t(slot)];
    LatentAttnArgs a;
    a.n_q = run.n;
    a.H = Hq;
    a.kv_dim = cw;
    a.v_dim = lat;
    a.q = ws.mqabs.data() + run.offset * Hq * cw;
    a.ctx0 = run.pos0;
    a.pages = cache.page_table();
    a.page_rows = LatentCache::kPageRows;
    a.out = ws.mlat.data() + run.offset * Hq * lat;
    latent_attention(ctx, a);
  }

  // out_h = W_UV(h) l_h, then o_proj.
  for (int64_t h = 0; h < Hq; h++) {
    const WeightView uv = w.kv_b_proj.slice_rows(h * kvb_head + nope, vd);  // [v, c]
    matmul_strided(ctx, uv, ws.mlat.data() + h * lat, T, Hq * lat, ws.mattn.data() + h * vd, Hq * vd);
  }
  matmul(ctx, w.o_proj, ws.mattn.data(), T, io.out);
}

}  // namespace kl
