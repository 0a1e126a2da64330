#include "model/config.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"

namespace kl {

namespace {
using nlohmann::json;

class Reader {
 public:
  Reader(const json& j, std::string where, std::string prefix = "")
      : j_(j), where_(std::move(where)), prefix_(std::move(prefix)) {}

  const json& need(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end()) fail(where_, ": missing key '", prefix_, key, "'");
    return *it;
  }
  [[noreturn]] void bad(const char* key, const char* what) const {
    fail(where_, ": key '", prefix_, key, "' ", what);
  }
  int64_t integer(const char* key, int64_t min = 0) const {
    const json& v = need(key);
    if (!v.is_number_integer()) bad(key, "must be an integer");
    int64_t x = v.get<int64_t>();
    if (x < min) bad(key, ("must be >= " + std::to_string(min)).c_str());
    return x;
  }
  double number(const char* key) const {
    const json& v = need(key);
    if (!v.is_number()) bad(key, "must be a number");
    return v.get<double>();
  }
  bool boolean(const char* key) const {
    const json& v = need(key);
    if (!v.is_boolean()) bad(key, "must be true or false");
    return v.get<bool>();
  }
  std::string string(const char* key) const {
    const json& v = need(key);
    if (!v.is_string()) bad(key, "must be a string");
    return v.get<std::string>();
  }
  std::vector<int64_t> int_list(const char* key) const {
    const json& v = need(key);
    if (!v.is_array()) bad(key, "must be a list of integers");
    std::vector<int64_t> out;
    for (const json& e : v) {
      if (!e.is_number_integer()) bad(key, "must be a list of integers");
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  // Keys the math does not use: optional, but when present they must have the right type.
  void optional_type(const char* key, bool (json::*is)() const noexcept, const char* what) const {
    auto it = j_.find(key);
    if (it != j_.end() && !((*it).*is)()) bad(key, what);
  }
  bool has(const char* key) const { return j_.contains(key); }

 private:
  const json& j_;
  std::string where_, prefix_;
};
}  // namespace

int64_t KimiConfig::n_kda_layers() const {
  return std::count(mixer.begin(), mixer.end(), MixerKind::Kda);
}
int64_t KimiConfig::n_mla_layers() const {
  return std::count(mixer.begin(), mixer.end(), MixerKind::Mla);
}

KimiConfig parse_config(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(where, ": not valid JSON");
  if (!j.is_object()) fail(where, ": the top level must be a JSON object");
  Reader r(j, where);
  KimiConfig c;

  c.model_type = r.string("model_type");
  if (c.model_type != "kimi_linear")
    fail(where, ": key 'model_type' is '", c.model_type, "', expected 'kimi_linear'");
  if (r.has("architectures")) {
    const json& a = j["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string()) r.bad("architectures", "must be a list of strings");
    if (a[0].get<std::string>() != "KimiLinearForCausalLM")
      fail(where, ": key 'architectures' names '", a[0].get<std::string>(),
           "', expected 'KimiLinearForCausalLM'");
  }
  c.vocab_size = r.integer("vocab_size", 1);
  c.hidden_size = r.integer("hidden_size", 1);
  c.num_hidden_layers = r.integer("num_hidden_layers", 1);
  c.intermediate_size = r.integer("intermediate_size", 1);
  c.rms_norm_eps = r.number("rms_norm_eps");
  if (!(c.rms_norm_eps > 0 && c.rms_norm_eps < 1)) r.bad("rms_norm_eps", "must be in (0, 1)");
  c.hidden_act = r.string("hidden_act");
  if (c.hidden_act != "silu") r.bad("hidden_act", ("is '" + c.hidden_act + "'; only 'silu' is supported").c_str());

  const json& lac = r.need("linear_attn_config");
  if (!lac.is_object()) r.bad("linear_attn_config", "must be an object");
  Reader lr(lac, where, "linear_attn_config.");
  c.kda_layers = lr.int_list("kda_layers");
  c.full_attn_layers = lr.int_list("full_attn_layers");
  c.kda_num_heads = lr.integer("num_heads", 1);
  c.kda_head_dim = lr.integer("head_dim", 1);
  c.short_conv_kernel_size = lr.integer("short_conv_kernel_size", 1);

  c.num_attention_heads = r.integer("num_attention_heads", 1);
  c.num_key_value_heads = r.integer("num_key_value_heads", 1);
  if (c.num_key_value_heads != c.num_attention_heads)
    fail(where, ": key 'num_key_value_heads' (", c.num_key_value_heads,
         ") must equal 'num_attention_heads' (", c.num_attention_heads, "): MLA here is plain MHA");
  {
    const json& q = r.need("q_lora_rank");
    if (!q.is_null())
      fail(where, ": key 'q_lora_rank' is set; Kimi Linear has no query compression (expected null)");
  }
  c.kv_lora_rank = r.integer("kv_lora_rank", 1);
  c.qk_nope_head_dim = r.integer("qk_nope_head_dim", 1);
  c.qk_rope_head_dim = r.integer("qk_rope_head_dim", 0);
  c.v_head_dim = r.integer("v_head_dim", 1);
  c.mla_use_nope = r.boolean("mla_use_nope");
  if (!c.mla_use_nope)
    fail(where, ": key 'mla_use_nope' is false; only NoPE MLA (true) is supported (spec Decisions 4)");

  c.num_experts = r.integer("num_experts", 1);
  c.num_experts_per_token = r.integer("num_experts_per_token", 1);
  if (c.num_experts_per_token > c.num_experts)
    fail(where, ": key 'num_experts_per_token' (", c.num_experts_per_token, ") exceeds 'num_experts' (",
         c.num_experts, ")");
  c.num_shared_experts = r.integer("num_shared_experts", 0);
  c.moe_intermediate_size = r.integer("moe_intermediate_size", 1);
  c.first_k_dense_replace = r.integer("first_k_dense_replace", 0);
  c.moe_layer_freq = r.integer("moe_layer_freq", 1);
  c.moe_router_activation_func = r.string("moe_router_activation_func");
  if (c.moe_router_activation_func != "sigmoid")
    fail(where, ": key 'moe_router_activation_func' is '", c.moe_router_activation_func,
         "'; only 'sigmoid' is supported");
  c.moe_renormalize = r.boolean("moe_renormalize");
  c.routed_scaling_factor = r.number("routed_scaling_factor");
  c.use_grouped_topk = r.boolean("use_grouped_topk");
  c.num_expert_group = r.integer("num_expert_group", 1);
  c.topk_group = r.integer("topk_group", 1);
  if (c.num_experts % c.num_expert_group != 0)
    fail(where, ": key 'num_expert_group' (", c.num_expert_group, ") must divide 'num_experts' (",
         c.num_experts, ")");
  if (c.topk_group > c.num_expert_group)
    fail(where, ": key 'topk_group' (", c.topk_group, ") exceeds 'num_expert_group' (", c.num_expert_group, ")");
  if (c.use_grouped_topk && c.num_expert_group > 1 &&
      c.topk_group * (c.num_experts / c.num_expert_group) < c.num_experts_per_token)
    fail(where, ": keys 'topk_group' x experts per group cannot supply 'num_experts_per_token' experts");

  c.num_nextn_predict_layers = r.integer("num_nextn_predict_layers", 0);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings");
  c.bos_token_id = r.integer("bos_token_id", 0);
  c.eos_token_id = r.integer("eos_token_id", 0);
  c.pad_token_id = r.integer("pad_token_id", 0);
  c.model_max_length = r.has("model_max_length") ? r.integer("model_max_length", 1)
                                                 : r.integer("max_position_embeddings", 1);

  // Informational keys: type-checked when present.
  r.optional_type("head_dim", &json::is_number_integer, "must be an integer");
  r.optional_type("initializer_range", &json::is_number, "must be a number");
  r.optional_type("rope_theta", &json::is_number, "must be a number");
  r.optional_type("use_cache", &json::is_boolean, "must be true or false");
  r.optional_type("transformers_version", &json::is_string, "must be a string");
  r.optional_type("dtype", &json::is_string, "must be a string");
  r.optional_type("auto_map", &json::is_object, "must be an object");

  // Layer map (spec Decisions 3): 1-based lists that together cover every layer exactly once.
  int64_t L = c.num_hidden_layers;
  std::set<int64_t> kda(c.kda_layers.begin(), c.kda_layers.end());
  std::set<int64_t> full(c.full_attn_layers.begin(), c.full_attn_layers.end());
  if (kda.size() != c.kda_layers.size()) fail(where, ": key 'linear_attn_config.kda_layers' lists a layer twice");
  if (full.size() != c.full_attn_layers.size())
    fail(where, ": key 'linear_attn_config.full_attn_layers' lists a layer twice");
  for (int64_t l : kda)
    if (l < 1 || l > L)
      fail(where, ": key 'linear_attn_config.kda_layers' has layer ", l, " outside 1..num_hidden_layers (", L, ")");
  for (int64_t l : full)
    if (l < 1 || l > L)
      fail(where, ": key 'linear_attn_config.full_attn_layers' has layer ", l,
           " outside 1..num_hidden_layers (", L, ")");
  for (int64_t l = 1; l <= L; l++) {
    bool k = kda.count(l), f = full.count(l);
    if (k && f) fail(where, ": layer ", l, " is in both 'kda_layers' and 'full_attn_layers'");
    if (!k && !f)
      fail(where, ": layer ", l, " is in neither 'linear_attn_config.kda_layers' nor 'full_attn_layers'");
    c.mixer.push_back(k ? MixerKind::Kda : MixerKind::Mla);
    // HF KimiDecoderLayer: MoE when layer_idx >= first_k_dense_replace and layer_idx % freq == 0.
    int64_t i = l - 1;
    c.ffn.push_back(i >= c.first_k_dense_replace && i % c.moe_layer_freq == 0 ? FfnKind::Moe : FfnKind::Dense);
  }
  if (c.short_conv_kernel_size < 2)
    fail(where, ": key 'linear_attn_config.short_conv_kernel_size' must be >= 2");
  if (c.bos_token_id >= c.vocab_size + 1024 || c.eos_token_id >= c.vocab_size + 1024)
    fail(where, ": token ids in 'bos_token_id'/'eos_token_id' are far outside the vocabulary");
  return c;
}

KimiConfig load_config(const std::string& dir) {
  std::string path = dir + "/config.json";
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open (is --model a Kimi Linear checkpoint directory?)");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), path);
}

std::string config_to_json(const KimiConfig& c) {
  json j;
  j["architectures"] = {"KimiLinearForCausalLM"};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["intermediate_size"] = c.intermediate_size;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["hidden_act"] = c.hidden_act;
  j["linear_attn_config"] = {{"kda_layers", c.kda_layers},
                             {"full_attn_layers", c.full_attn_layers},
                             {"num_heads", c.kda_num_heads},
                             {"head_dim", c.kda_head_dim},
                             {"short_conv_kernel_size", c.short_conv_kernel_size}};
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.hidden_size / c.num_attention_heads;
  j["q_lora_rank"] = nullptr;
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["mla_use_nope"] = c.mla_use_nope;
  j["num_experts"] = c.num_experts;
  j["num_experts_per_token"] = c.num_experts_per_token;
  j["num_shared_experts"] = c.num_shared_experts;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  j["moe_layer_freq"] = c.moe_layer_freq;
  j["moe_router_activation_func"] = c.moe_router_activation_func;
  j["moe_renormalize"] = c.moe_renormalize;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["use_grouped_topk"] = c.use_grouped_topk;
  j["num_expert_group"] = c.num_expert_group;
  j["topk_group"] = c.topk_group;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["pad_token_id"] = c.pad_token_id;
  j["model_max_length"] = c.model_max_length;
  j["rope_theta"] = 10000.0;
  j["rope_scaling"] = nullptr;
  j["use_cache"] = true;
  j["dtype"] = "bfloat16";
  return j.dump(2) + "\n";
}

}  // namespace kl
