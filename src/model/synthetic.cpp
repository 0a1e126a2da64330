#include "model/synthetic.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/buffer.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "format/safetensors.h"

namespace kl {

KimiConfig builtin_config() {
  KimiConfig c;
  c.model_type = "kimi_linear";
  c.vocab_size = 163840;
  c.hidden_size = 256;
  c.num_hidden_layers = 8;
  c.intermediate_size = 512;
  c.rms_norm_eps = 1e-5;
  c.hidden_act = "silu";
  c.kda_layers = {1, 2, 3, 5, 6, 7};
  c.full_attn_layers = {4, 8};
  c.kda_num_heads = 4;
  c.kda_head_dim = 64;
  c.short_conv_kernel_size = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.kv_lora_rank = 128;
  c.qk_nope_head_dim = 32;
  c.qk_rope_head_dim = 16;
  c.v_head_dim = 32;
  c.mla_use_nope = true;
  c.num_experts = 16;
  c.num_experts_per_token = 4;
  c.num_shared_experts = 1;
  c.moe_intermediate_size = 128;
  c.first_k_dense_replace = 1;
  c.moe_layer_freq = 1;
  c.moe_router_activation_func = "sigmoid";
  c.moe_renormalize = true;
  c.routed_scaling_factor = 2.446;
  c.use_grouped_topk = true;
  c.num_expert_group = 1;
  c.topk_group = 1;
  c.tie_word_embeddings = false;
  c.bos_token_id = 163584;
  c.eos_token_id = 163586;
  c.pad_token_id = 163839;
  c.model_max_length = 1048576;
  // Same derivation as parse_config, by round-tripping through it.
  return parse_config(config_to_json(c), "(built-in model)");
}

KimiConfig synthetic_48b_config(int64_t layers) {
  if (layers < 1) fail("--layers must be at least 1");
  KimiConfig c = builtin_config();
  c.hidden_size = 2304;
  c.num_hidden_layers = layers;
  c.intermediate_size = 9216;
  c.kda_num_heads = 32;
  c.kda_head_dim = 128;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 32;
  c.kv_lora_rank = 512;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.v_head_dim = 128;
  c.num_experts = 256;
  c.num_experts_per_token = 8;
  c.moe_intermediate_size = 1024;
  c.kda_layers.clear();
  c.full_attn_layers.clear();
  for (int64_t l = 1; l <= layers; l++) (l % 4 == 0 ? c.full_attn_layers : c.kda_layers).push_back(l);
  return parse_config(config_to_json(c), "(synthetic 48B-geometry model)");
}

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t hash_name(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}
// Uniform in [0, 1).
float unit(uint64_t& s) { return float(splitmix(s) >> 40) * (1.f / 16777216.f); }

// How a tensor is initialized, from its name (the fixture's recipe: tests/data/tiny-a manifest).
struct Init {
  enum { Uniform, NormWeight, ALog, DtBias, Bias } kind = Uniform;
  float std = 0.f;
};
Init init_for(const std::string& name, const std::vector<int64_t>& shape, int64_t hidden) {
  auto ends = [&](const char* suf) {
    std::string s(suf);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends("A_log")) return {Init::ALog};
  if (ends("dt_bias")) return {Init::DtBias};
  if (ends("e_score_correction_bias")) return {Init::Bias, 0.05f};
  if (ends("norm.weight") || ends("layernorm.weight")) return {Init::NormWeight, 0.1f};
  if (ends("conv1d.weight")) return {Init::Uniform, 0.35f};
  if (name == "model.embed_tokens.weight") return {Init::Uniform, 1.f};
  if (name == "lm_head.weight") return {Init::Uniform, 1.f / std::sqrt(float(hidden))};
  const float fan_in = float(shape.back());
  const bool out_proj = ends("o_proj.weight") || ends("down_proj.weight") || ends("w2.weight");
  return {Init::Uniform, (out_proj ? 0.5f : 1.f) / std::sqrt(fan_in)};
}

void fill(const Init& in, uint64_t seed, float* dst, int64_t begin, int64_t end) {
  uint64_t s = seed ^ (uint64_t(begin) * 0x2545F4914F6CDD1Dull);
  const float a = std::sqrt(3.f) * in.std;  // uniform with the given standard deviation
  for (int64_t i = begin; i < end; i++) {
    float u = unit(s);
    switch (in.kind) {
      case Init::Uniform:
      case Init::Bias:
        dst[i - begin] = (2.f * u - 1.f) * a;
        break;
      case Init::NormWeight:
        dst[i - begin] = 1.f + (2.f * u - 1.f) * a;
        break;
      case Init::ALog:  // decay rates a = exp(A_log) in [1, 16]
        dst[i - begin] = std::log(1.f + 15.f * u);
        break;
      case Init::DtBias: {  // softplus(dt_bias) log-uniform in [1e-3, 1e-1]
        float dt = std::exp(std::log(1e-3f) + u * (std::log(1e-1f) - std::log(1e-3f)));
        dst[i - begin] = dt + std::log(-std::expm1(-dt));
        break;
      }
    }
  }
}

struct Storage {
  std::vector<Buffer<unsigned char>> blobs;
};

}  // namespace

SyntheticWeights make_synthetic_weights(const KimiConfig& c, DType format, uint64_t seed, ThreadPool* pool) {
  if (format != DType::F32 && format != DType::BF16 && format != DType::F16)
    fail("synthetic weights can be F32, BF16 or F16, not ", dtype_name(format));
  ModelWeights scratch;
  std::vector<WeightSpec> table = weight_table(c, scratch);
  auto storage = std::make_shared<Storage>();
  storage->blobs.resize(table.size());
  SyntheticWeights out;
  for (size_t i = 0; i < table.size(); i++) {
    const WeightSpec& s = table[i];
    const bool f32_only = s.name.ends_with("A_log") || s.name.ends_with("dt_bias");
    const DType t = f32_only ? DType::F32 : format;
    const int64_t n = s.numel();
    storage->blobs[i].resize(size_t(n) * dtype_size(t));
    unsigned char* dst = storage->blobs[i].data();
    const Init init = init_for(s.name, s.shape, c.hidden_size);
    const uint64_t tseed = hash_name(s.name, seed);
    // Fill in blocks of 64K elements, each block seeded by its start: same values for any
    // thread count.
    const int64_t block = 65536, nblocks = (n + block - 1) / block;
    auto work = [&](int64_t b, int) {
      float tmp[4096];
      for (int64_t p = b * block; p < std::min(n, (b + 1) * block); p += 4096) {
        const int64_t e = std::min({n, (b + 1) * block, p + 4096});
        fill(init, tseed, tmp, p, e);
        for (int64_t j = p; j < e; j++) {
          const float v = tmp[j - p];
          if (t == DType::F32) {
            std::memcpy(dst + 4 * j, &v, 4);
          } else {
            const uint16_t h = t == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
            std::memcpy(dst + 2 * j, &h, 2);
          }
        }
      }
    };
    if (pool)
      pool->parallel_for(nblocks, work);
    else
      for (int64_t b = 0; b < nblocks; b++) work(b, 0);
    TensorView v;
    v.data = dst;
    v.dtype = t;
    v.ndim = int(s.shape.size());
    for (int d = 0; d < v.ndim; d++) v.shape[size_t(d)] = s.shape[size_t(d)];
    out.tensors.push_back({s.name, v});
  }
  out.storage = storage;
  return out;
}

std::unique_ptr<Model> make_synthetic_model(const KimiConfig& c, DType format, uint64_t seed, ThreadPool* pool,
                                            const ModelOptions& opt) {
  SyntheticWeights w = make_synthetic_weights(c, format, seed, pool);
  return Model::from_memory(c, w.storage, w.tensors, opt);
}

void save_hf_directory(const std::string& dir, const KimiConfig& c, const SyntheticWeights& w) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create directory: ", ec.message());
  {
    std::ofstream f(dir + "/config.json", std::ios::binary);
    f << config_to_json(c);
    if (!f) fail(dir, "/config.json: cannot write");
  }
  std::vector<StWriteTensor> ts;
  for (const auto& [name, v] : w.tensors)
    ts.push_back({name, v.dtype, std::vector<int64_t>(v.shape.begin(), v.shape.begin() + v.ndim), v.data});
  write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});
}

}  // namespace kl
