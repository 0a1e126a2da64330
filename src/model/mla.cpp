// MLA mixer without positional encoding (spec §4): the cache holds the normalized latent and
// the shared key part (spec §4.3); each run attends over it in the absorbed or the
// decompressed form, whichever costs less for that run (the two are the same math).
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
#include "kernels/tile_ops.h"
#include "model/blocks.h"

namespace kl {

// Multiply-adds for one run of n queries after ctx0 cached tokens, per head (spec §4.3). With
// pairs = Σ_i (ctx0 + i + 1) = n·ctx0 + n(n+1)/2 (query, key) pairs:
//   absorbed      pairs·(2c + r)              scores over [c ; k_pe], values over c
//               + n·(nope + v)·c              W_UK(h)ᵀ into each query, W_UV(h) on each output
//   decompressed  (ctx0 + n)·(nope + v)·c     k_nope and v of every key, once per run
//               + pairs·(nope + r + v)        scores over [k_nope ; k_pe], values over v
// Per key of a long context that is n·(2c + r) against (nope + v)·c + n·(nope + r + v): the
// absorbed form wins below n = (nope + v)·c / (2c - nope - v), about 171 queries for the real
// model (c 512, r 64, nope = v = 128). So decode is absorbed and a 512-token prompt chunk
// decompressed. Both kernels run near the same multiply-add rate, so counts are compared as is.
MlaForm mla_cheaper_form(const KimiConfig& c, int64_t n, int64_t ctx0) {
  const double lat = double(c.kv_lora_rank), r = double(c.qk_rope_head_dim);
  const double nope = double(c.qk_nope_head_dim), v = double(c.v_head_dim);
  const double pairs = double(n) * double(ctx0) + double(n) * double(n + 1) / 2;
  const double absorbed = pairs * (2 * lat + r) + double(n) * (nope + v) * lat;
  const double decompressed = double(ctx0 + n) * (nope + v) * lat + pairs * (nope + r + v);
  return absorbed <= decompressed ? MlaForm::Absorbed : MlaForm::Decompressed;
}

namespace {

MlaForm form_of(const Workspace& ws, const KimiConfig& c, const RunSpan& run) {
  return ws.mla_form != MlaForm::Auto ? ws.mla_form : mla_cheaper_form(c, run.n, run.pos0);
}

}  // namespace

void mla_forward(const BlockIO& io, const MlaWeights& w, int64_t slot) {
  const Context& ctx = *io.ctx;
  const KimiConfig& c = *io.cfg;
  Workspace& ws = *io.ws;
  const int64_t T = io.T, Hq = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, dq = c.mla_q_head_dim();
  const int64_t lat = c.kv_lora_rank, cw = c.mla_cache_width(), vd = c.v_head_dim;
  const int64_t kvb_head = nope + vd;  // rows of kv_b_proj per head
  const float scale = 1.f / std::sqrt(float(dq));  // spec §4.2
  if (ctx.pool->size() > ws.n_threads)
    fail("mla: the workspace was sized for ", ws.n_threads, " threads, the pool has ", ctx.pool->size());

  // spec §4.1: q [T, Hq*dq]; kv_a -> [latent c | k_pe].
  const MatmulJob from_x[2] = {{&w.q_proj, io.x, T, c.hidden_size, ws.mq.data(), w.q_proj.rows},
                               {&w.kv_a_proj_with_mqa, io.x, T, c.hidden_size, ws.mkva.data(), cw}};
  matmul_batch(ctx, from_x, 2);  // q [T, Hq*dq], kv_a [T, c + r]
  // kv_a_layernorm eps is 1e-6 in the reference code (spec Decisions 2).
  for (int64_t t = 0; t < T; t++) {
    float* row = ws.mkva.data() + t * cw;
    rmsnorm(row, w.kv_a_layernorm.data(), 1e-6f, lat, row);
  }
  // Append this batch's rows to each sequence's cache (NoPE: rows are position-free).
  bool any_absorbed = false;
  for (const RunSpan& run : io.runs) {
    LatentCache& cache = run.state->mla[size_t(slot)];
    cache.resize(run.pos0 + run.n);
    for (int64_t i = 0; i < run.n; i++) cache.write_row(run.pos0 + i, ws.mkva.data() + (run.offset + i) * cw);
    any_absorbed |= form_of(ws, c, run) == MlaForm::Absorbed;
  }

  if (any_absorbed) {
    // Absorbed queries per head: [W_UK(h)ᵀ q_nope ; q_pe] · scale  [T, Hq, c + r] (spec §4.3).
    ctx.pool->parallel_for(Hq, [&](int64_t h, int thread) {
      float* wuk = ws.mwuk.data() + size_t(thread) * size_t(nope * lat);  // [nope, c], scaled
      const WeightView uk = w.kv_b_proj.slice_rows(h * kvb_head, nope);
      for (int64_t r = 0; r < nope; r++) {
        convert_to_f32(uk.dtype, uk.row(r), wuk + r * lat, size_t(lat));
        for (int64_t j = 0; j < lat; j++) wuk[r * lat + j] *= scale;
      }
      for (const RunSpan& run : io.runs) {
        if (form_of(ws, c, run) != MlaForm::Absorbed) continue;
        GemmF32Args g;  // [n, c] = q_nope [n, nope] · W_UK(h) [nope, c]
        g.M = run.n;
        g.N = lat;
        g.K = nope;
        g.a = ws.mq.data() + run.offset * Hq * dq + h * dq;
        g.a_rs = Hq * dq;
        g.b = wuk;
        g.ldb = lat;
        g.c = ws.mqabs.data() + (run.offset * Hq + h) * cw;
        g.ldc = Hq * cw;
        ctx.k->gemm_f32(g);
        for (int64_t t = run.offset; t < run.offset + run.n; t++) {
          const float* qp = ws.mq.data() + t * Hq * dq + h * dq + nope;
          float* qa = ws.mqabs.data() + (t * Hq + h) * cw + lat;
          for (int64_t j = 0; j < rope; j++) qa[j] = qp[j] * scale;
        }
      }
    });
  }

  // Attention over each sequence's cache, into attn [T, Hq*v] (absorbed: latent l [T, Hq, c]).
  for (const RunSpan& run : io.runs) {
    const LatentCache& cache = run.state->mla[size_t(slot)];
    if (form_of(ws, c, run) == MlaForm::Absorbed) {
      LatentAttnArgs a;
      a.n_q = run.n;
      a.H = Hq;
      a.kv_dim = cw;
      a.v_dim = lat;
      a.q = ws.mqabs.data() + run.offset * Hq * cw;
      a.ctx0 = run.pos0;
      a.pages = cache.page_table();
      a.cache_dtype = cache.dtype();
      a.page_rows = LatentCache::kPageRows;
      a.out = ws.mlat.data() + run.offset * Hq * lat;
      a.scratch = ws.mattn_scratch.data();
      a.scratch_floats = ws.mattn_scratch.size();
      latent_attention_absorbed(ctx, a);
    } else {
      LatentDecompArgs a;
      a.n_q = run.n;
      a.H = Hq;
      a.lat = lat;
      a.dr = rope;
      a.dk = nope;
      a.dv = vd;
      a.w_kv = &w.kv_b_proj;
      a.q = ws.mq.data() + run.offset * Hq * dq;
      a.ldq = Hq * dq;
      a.scale = scale;
      a.ctx0 = run.pos0;
      a.pages = cache.page_table();
      a.cache_dtype = cache.dtype();
      a.page_rows = LatentCache::kPageRows;
      a.out = ws.mattn.data() + run.offset * Hq * vd;
      a.ldo = Hq * vd;
      a.scratch = ws.mattn_scratch.data();
      a.scratch_floats = ws.mattn_scratch.size();
      latent_attention_decompressed(ctx, a);
    }
  }

  if (any_absorbed) {
    // out_h = W_UV(h) l_h for the absorbed runs, one head per task.
    const MatmulRowsFn rows_fn = matmul_rows_fn(*ctx.k, w.kv_b_proj.dtype);
    ctx.pool->parallel_for(Hq, [&](int64_t h, int) {
      const WeightView uv = w.kv_b_proj.slice_rows(h * kvb_head + nope, vd);  // [v, c]
      for (const RunSpan& run : io.runs) {
        if (form_of(ws, c, run) != MlaForm::Absorbed) continue;
        const MatmulArgs m{&uv, ws.mlat.data() + run.offset * Hq * lat + h * lat, run.n, Hq * lat,
                           ws.mattn.data() + run.offset * Hq * vd + h * vd, Hq * vd};
        rows_fn(m, 0, vd);
      }
    });
  }
  matmul(ctx, w.o_proj, ws.mattn.data(), T, io.out);
}

}  // namespace kl
