#include "runtime/inspect.h"

#include <cstdio>
#include <sstream>

#include "format/safetensors.h"
#include "model/weights.h"

namespace kl {

namespace {
std::string group_digits(int64_t v) {
  std::string s = std::to_string(v), o;
  int n = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (n && n % 3 == 0 && *it != '-') o.insert(o.begin(), ',');
    o.insert(o.begin(), *it);
    n++;
  }
  return o;
}
std::string human_bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) {
    b /= 1024;
    i++;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, i ? "%.2f %s" : "%.0f %s", b, u[i]);
  return buf;
}
}  // namespace

nlohmann::json inspect_config(const KimiConfig& c) {
  using nlohmann::json;
  ModelWeights scratch;
  std::vector<WeightSpec> table = weight_table(c, scratch);
  int64_t total = 0, embed = 0, routed = 0;
  for (const WeightSpec& s : table) {
    total += s.numel();
    if (s.name == "model.embed_tokens.weight") embed = s.numel();
    if (s.name.find(".experts.") != std::string::npos) routed += s.numel();
  }
  const int64_t per_expert = 3 * c.moe_intermediate_size * c.hidden_size;
  int64_t n_moe = 0;
  for (FfnKind f : c.ffn) n_moe += f == FfnKind::Moe;
  // Active per token: everything but the routed experts, plus top-k of them per MoE layer; the
  // embedding table is only looked up, so it is left out (as in "A3B").
  const int64_t active = total - routed + n_moe * c.num_experts_per_token * per_expert - embed;

  json layers = json::array();
  for (int64_t l = 0; l < c.num_hidden_layers; l++)
    layers.push_back({{"layer", l},
                      {"mixer", c.mixer[size_t(l)] == MixerKind::Kda ? "KDA" : "MLA"},
                      {"ffn", c.ffn[size_t(l)] == FfnKind::Dense ? "dense" : "MoE"}});

  const int64_t nk = c.n_kda_layers(), nm = c.n_mla_layers(), L = c.num_hidden_layers;
  const int64_t rec = nk * c.kda_num_heads * c.kda_head_dim * c.kda_head_dim;
  const int64_t conv = nk * 3 * (c.short_conv_kernel_size - 1) * c.kda_proj_dim();
  const int64_t per_layer = c.mla_cache_width();
  const int64_t mla_vals = nm * per_layer, all_mla_vals = L * per_layer;
  const int64_t mha_vals = L * c.num_attention_heads * (c.mla_q_head_dim() + c.v_head_dim);
  json r;
  r["layers"] = layers;
  r["num_layers"] = L;
  r["kda_layers"] = nk;
  r["mla_layers"] = nm;
  r["moe_layers"] = n_moe;
  r["parameters"] = {{"total", total},
                     {"active_per_token", active},
                     {"embedding", embed},
                     {"routed_experts", routed},
                     {"tensors", int64_t(table.size())}};
  // The engine keeps the state in fp32 (4 bytes a value) and the cache in fp32 or bf16 (2 bytes a
  // value): by default as the weights (--cache-type auto).
  r["state_per_sequence"] = {{"kda_recurrent_values", rec},
                             {"kda_conv_values", conv},
                             {"bytes", (rec + conv) * 4},
                             {"note", "constant in context length; fp32"}};
  r["mla_cache_per_token"] = {{"layers", nm},
                              {"values_per_layer", per_layer},
                              {"values", mla_vals},
                              {"bytes", mla_vals * 4},
                              {"bytes_bf16", mla_vals * 2},
                              {"bytes_at_max_context", mla_vals * 4 * c.model_max_length},
                              {"bytes_bf16_at_max_context", mla_vals * 2 * c.model_max_length}};
  r["all_mla_cache_per_token"] = {{"layers", L},
                                  {"values", all_mla_vals},
                                  {"bytes", all_mla_vals * 4},
                                  {"reduction", all_mla_vals ? 1.0 - double(mla_vals) / double(all_mla_vals) : 0.0}};
  r["full_mha_cache_per_token"] = {{"values", mha_vals}, {"note", "decompressed per-head K and V in every layer"}};
  r["max_context"] = c.model_max_length;
  r["weights"] = {{"present", false}, {"note", "config only"}};
  return r;
}

nlohmann::json inspect_model(const std::string& dir) {
  KimiConfig c = load_config(dir);
  nlohmann::json r = inspect_config(c);
  r["model_dir"] = dir;
  if (SafetensorsSet::has_weights(dir)) {
    SafetensorsSet set = SafetensorsSet::open(dir);
    ModelWeights scratch;
    int64_t bytes = 0, missing = 0;
    std::map<std::string, int64_t> formats;
    for (const WeightSpec& s : weight_table(c, scratch)) {
      const SafetensorsSet::Entry* e = set.find(s.name);
      if (!e) {
        missing++;
        continue;
      }
      bytes += int64_t(e->view.nbytes());
      formats[std::string(dtype_name(e->view.dtype))] += e->view.numel();
    }
    r["weights"] = {{"present", true},
                    {"files", set.files().size()},
                    {"bytes", bytes},
                    {"formats", formats},
                    {"missing_tensors", missing},
                    {"extra_tensors", int64_t(set.size()) - (int64_t(r["parameters"]["tensors"]) - missing)}};
  } else {
    r["weights"] = {{"present", false}, {"note", "no model.safetensors or model.safetensors.index.json"}};
  }
  return r;
}

std::string inspect_text(const nlohmann::json& r) {
  std::ostringstream o;
  if (r.contains("model_dir")) o << "model:      " << r["model_dir"].get<std::string>() << "\n";
  o << "layers:     " << r["num_layers"] << " (" << r["kda_layers"] << " KDA, " << r["mla_layers"] << " MLA; "
    << r["moe_layers"] << " MoE)\n";
  o << "layer map: ";
  for (const auto& l : r["layers"])
    o << " " << l["layer"].get<int64_t>() << ":" << l["mixer"].get<std::string>() << "/"
      << l["ffn"].get<std::string>();
  o << "\n";
  const auto& p = r["parameters"];
  o << "parameters: " << group_digits(p["total"]) << " total, " << group_digits(p["active_per_token"])
    << " active per token (excluding the " << group_digits(p["embedding"]) << " embedding)\n";
  const auto& w = r["weights"];
  if (w["present"].get<bool>()) {
    o << "weights:    " << human_bytes(w["bytes"].get<double>()) << " in " << w["files"] << " file(s);";
    for (auto& [k, v] : w["formats"].items()) o << " " << k << " " << group_digits(v.get<int64_t>());
    o << "\n";
    if (w["missing_tensors"].get<int64_t>() > 0) o << "            " << w["missing_tensors"] << " required tensors missing\n";
    if (w["extra_tensors"].get<int64_t>() > 0) o << "            " << w["extra_tensors"] << " extra tensors (unused)\n";
  } else {
    o << "weights:    absent (config only)\n";
  }
  const auto& s = r["state_per_sequence"];
  o << "state:      " << human_bytes(s["bytes"].get<double>()) << " per sequence (KDA recurrent "
    << group_digits(s["kda_recurrent_values"]) << " + conv " << group_digits(s["kda_conv_values"])
    << " values, fp32), constant in context length\n";
  const auto& m = r["mla_cache_per_token"];
  const auto& a = r["all_mla_cache_per_token"];
  char red[32];
  std::snprintf(red, sizeof red, "%.1f %%", 100.0 * a["reduction"].get<double>());
  o << "MLA cache:  " << m["layers"] << " MLA layers x " << m["values_per_layer"] << " cached values per token = "
    << group_digits(m["values"]) << " values (" << human_bytes(m["bytes"].get<double>()) << " fp32, "
    << human_bytes(m["bytes_bf16"].get<double>()) << " bf16) per token; bf16 by default for BF16/F16 weights, fp32 "
    << "for F32 ones (--cache-type)\n";
  o << "            at the full context of " << group_digits(r["max_context"]) << " tokens: "
    << human_bytes(m["bytes_at_max_context"].get<double>()) << " fp32, "
    << human_bytes(m["bytes_bf16_at_max_context"].get<double>()) << " bf16 per sequence\n";
  o << "            an all-MLA model of this shape: " << a["layers"] << " x " << m["values_per_layer"] << " = "
    << group_digits(a["values"]) << " values per token; this model's cache is " << red << " smaller\n";
  o << "context:    up to " << group_digits(r["max_context"]) << " tokens\n";
  return o.str();
}

}  // namespace kl
