// config.json of a Kimi Linear checkpoint (spec §1), parsed and checked. Every value the math
// needs is read from here; nothing about the layer layout is assumed (spec Decisions 3).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kl {

enum class MixerKind { Kda, Mla };
enum class FfnKind { Dense, Moe };

struct KimiConfig {
  std::string model_type;  // "kimi_linear"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t intermediate_size = 0;  // dense MLP width (layers < first_k_dense_replace)
  double rms_norm_eps = 1e-5;
  std::string hidden_act;  // "silu"

  // linear_attn_config (KDA)
  std::vector<int64_t> kda_layers;        // 1-based
  std::vector<int64_t> full_attn_layers;  // 1-based
  int64_t kda_num_heads = 0;
  int64_t kda_head_dim = 0;  // d_k = d_v
  int64_t short_conv_kernel_size = 0;

  // MLA (NoPE)
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  bool mla_use_nope = true;

  // MoE
  int64_t num_experts = 0;
  int64_t num_experts_per_token = 0;
  int64_t num_shared_experts = 0;
  int64_t moe_intermediate_size = 0;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  std::string moe_router_activation_func;  // "sigmoid"
  bool moe_renormalize = true;
  double routed_scaling_factor = 1.0;
  bool use_grouped_topk = true;
  int64_t num_expert_group = 1;
  int64_t topk_group = 1;

  int64_t num_nextn_predict_layers = 0;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1, eos_token_id = -1, pad_token_id = -1;
  int64_t model_max_length = 0;

  // Derived, one entry per layer (0-based).
  std::vector<MixerKind> mixer;
  std::vector<FfnKind> ffn;

  int64_t kda_proj_dim() const { return kda_num_heads * kda_head_dim; }
  int64_t mla_q_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int64_t mla_cache_width() const { return kv_lora_rank + qk_rope_head_dim; }  // spec §4.3
  int64_t n_kda_layers() const;
  int64_t n_mla_layers() const;
};

// Parses config.json text. `where` (the path) prefixes every error; errors name the key.
KimiConfig parse_config(const std::string& json_text, const std::string& where);
// Reads DIR/config.json.
KimiConfig load_config(const std::string& dir);
// Serializes back to a config.json (used when saving the synthetic model).
std::string config_to_json(const KimiConfig& c);

}  // namespace kl
