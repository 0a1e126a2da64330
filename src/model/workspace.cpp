#include "model/workspace.h"

#include <algorithm>

#include "kernels/attention.h"
#include "kernels/kda.h"

namespace kl {

Workspace::Workspace(const KimiConfig& c, int64_t T, int n_threads) : max_tokens(T), n_threads(n_threads) {
  const size_t t = size_t(T), d = size_t(c.hidden_size);
  const size_t P = size_t(c.kda_proj_dim()), Dk = size_t(c.kda_head_dim), H = size_t(c.kda_num_heads);
  const size_t Hq = size_t(c.num_attention_heads), dq = size_t(c.mla_q_head_dim());
  const size_t cw = size_t(c.mla_cache_width()), lat = size_t(c.kv_lora_rank), vd = size_t(c.v_head_dim);
  const size_t E = size_t(c.num_experts), k = size_t(c.num_experts_per_token);
  const size_t F = size_t(std::max({c.intermediate_size, c.moe_intermediate_size,
                                    c.moe_intermediate_size * c.num_shared_experts}));
  x.resize(t * d);
  xn.resize(t * d);
  mix.resize(t * d);
  for (Buffer<float>* b : {&kq, &kk, &kv, &kg, &kr, &ko}) b->resize(t * P);
  klow.resize(2 * t * Dk);  // the f and g low-rank halves
  kbeta.resize(t * H);
  kconv.resize(size_t(c.short_conv_kernel_size - 1) * P);
  kda_chunk_floats = kda_chunk_scratch_floats(c.kda_head_dim, c.kda_head_dim);
  kda_chunk_scratch.resize(kda_chunk_floats * size_t(n_threads));
  mq.resize(t * Hq * dq);
  mkva.resize(t * cw);
  mqabs.resize(t * Hq * cw);
  mlat.resize(t * Hq * lat);
  mattn.resize(t * Hq * vd);
  mwuk.resize(size_t(c.qk_nope_head_dim) * lat * size_t(n_threads));
  mattn_scratch.resize(std::max(
      latent_attention_absorbed_scratch_floats(c.num_attention_heads, c.mla_cache_width(), c.kv_lora_rank, n_threads),
      latent_attention_decompressed_scratch_floats(T, c.num_attention_heads, c.kv_lora_rank, c.qk_nope_head_dim, c.qk_rope_head_dim,
                                                   c.v_head_dim, n_threads)));
  rlogits.resize(t * E);
  rweight.resize(t * k);
  ridx.resize(t * k);
  expert_count.resize(E);
  expert_offset.resize(E + 1);
  expert_tokens.resize(t * k);
  expert_slot.resize(t * k);
  moe_group_rows = std::max<int64_t>(T, 256);  // decode: every active expert in one group
  const size_t g = size_t(moe_group_rows);
  fx.resize(g * d);
  fg.resize(g * F);
  fu.resize(g * F);
  fy.resize(g * d);
  fin.resize(t * d);
}

}  // namespace kl
