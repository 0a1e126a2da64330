#include "model/weights.h"

namespace kl {

int64_t WeightSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<WeightSpec> weight_table(const KimiConfig& c, ModelWeights& w) {
  const int64_t d = c.hidden_size, V = c.vocab_size;
  const int64_t H = c.kda_num_heads, Dk = c.kda_head_dim, P = c.kda_proj_dim();
  const int64_t W = c.short_conv_kernel_size;
  const int64_t Hq = c.num_attention_heads, dq = c.mla_q_head_dim(), r = c.qk_rope_head_dim;
  const int64_t kvc = c.kv_lora_rank, nope = c.qk_nope_head_dim, vd = c.v_head_dim;
  const int64_t E = c.num_experts, Fm = c.moe_intermediate_size, Fs = Fm * c.num_shared_experts;

  std::vector<WeightSpec> t;
  auto mat = [&](std::string name, std::vector<int64_t> shape, WeightView& v) {
    t.push_back({std::move(name), std::move(shape), &v, nullptr});
  };
  auto small = [&](std::string name, std::vector<int64_t> shape, std::vector<float>& v) {
    t.push_back({std::move(name), std::move(shape), nullptr, &v});
  };
  auto mlp = [&](const std::string& p, const char* g, const char* u, const char* dn, int64_t f, MlpWeights& m) {
    mat(p + g + ".weight", {f, d}, m.gate);
    mat(p + u + ".weight", {f, d}, m.up);
    mat(p + dn + ".weight", {d, f}, m.down);
  };

  w.layers.assign(size_t(c.num_hidden_layers), {});
  mat("model.embed_tokens.weight", {V, d}, w.embed_tokens);
  for (int64_t l = 0; l < c.num_hidden_layers; l++) {
    LayerWeights& L = w.layers[size_t(l)];
    L.mixer = c.mixer[size_t(l)];
    L.ffn = c.ffn[size_t(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    small(p + "input_layernorm.weight", {d}, L.input_layernorm);
    small(p + "post_attention_layernorm.weight", {d}, L.post_attention_layernorm);
    const std::string a = p + "self_attn.";
    if (L.mixer == MixerKind::Kda) {
      KdaWeights& k = L.kda;
      mat(a + "q_proj.weight", {P, d}, k.q_proj);
      mat(a + "k_proj.weight", {P, d}, k.k_proj);
      mat(a + "v_proj.weight", {P, d}, k.v_proj);
      small(a + "q_conv1d.weight", {P, 1, W}, k.q_conv);
      small(a + "k_conv1d.weight", {P, 1, W}, k.k_conv);
      small(a + "v_conv1d.weight", {P, 1, W}, k.v_conv);
      mat(a + "f_a_proj.weight", {Dk, d}, k.f_a_proj);
      mat(a + "f_b_proj.weight", {P, Dk}, k.f_b_proj);
      small(a + "dt_bias", {P}, k.dt_bias);
      small(a + "A_log", {1, 1, H, 1}, k.A_log);
      mat(a + "b_proj.weight", {H, d}, k.b_proj);
      mat(a + "g_a_proj.weight", {Dk, d}, k.g_a_proj);
      mat(a + "g_b_proj.weight", {P, Dk}, k.g_b_proj);
      small(a + "o_norm.weight", {Dk}, k.o_norm);
      mat(a + "o_proj.weight", {d, P}, k.o_proj);
    } else {
      MlaWeights& m = L.mla;
      mat(a + "q_proj.weight", {Hq * dq, d}, m.q_proj);
      mat(a + "kv_a_proj_with_mqa.weight", {kvc + r, d}, m.kv_a_proj_with_mqa);
      small(a + "kv_a_layernorm.weight", {kvc}, m.kv_a_layernorm);
      mat(a + "kv_b_proj.weight", {Hq * (nope + vd), kvc}, m.kv_b_proj);
      mat(a + "o_proj.weight", {d, Hq * vd}, m.o_proj);
    }
    if (L.ffn == FfnKind::Dense) {
      mlp(p + "mlp.", "gate_proj", "up_proj", "down_proj", c.intermediate_size, L.mlp);
    } else {
      MoeWeights& m = L.moe;
      const std::string b = p + "block_sparse_moe.";
      mat(b + "gate.weight", {E, d}, m.router);
      small(b + "gate.e_score_correction_bias", {E}, m.correction_bias);
      m.experts.assign(size_t(E), {});
      for (int64_t e = 0; e < E; e++)
        mlp(b + "experts." + std::to_string(e) + ".", "w1", "w3", "w2", Fm, m.experts[size_t(e)]);
      if (Fs > 0) mlp(b + "shared_experts.", "gate_proj", "up_proj", "down_proj", Fs, m.shared);
    }
  }
  small("model.norm.weight", {d}, w.final_norm);
  // Tied embeddings reuse embed_tokens (the loader binds it); Kimi Linear does not tie.
  if (!c.tie_word_embeddings) mat("lm_head.weight", {V, d}, w.lm_head);
  return t;
}

}  // namespace kl
