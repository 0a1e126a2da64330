#include "model/model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "core/error.h"
#include "core/thread_pool.h"
#include "format/safetensors.h"
#include "kernels/ops.h"

namespace kl {

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& dir, const ModelOptions& opt) {
  std::unique_ptr<Model> m(new Model());
  m->cfg_ = load_config(dir);
  m->opt_ = opt;
  m->files_ = std::make_unique<SafetensorsSet>(SafetensorsSet::open(dir, opt.weights_access));
  std::vector<std::pair<std::string, TensorView>> tensors;
  for (const std::string& name : m->files_->names()) tensors.push_back({name, m->files_->find(name)->view});
  m->bind(tensors, dir);
  m->set_cache_dtype(opt.cache_dtype);  // after bind: unset means "as the weights"
  return m;
}

std::unique_ptr<Model> Model::from_memory(KimiConfig cfg, std::shared_ptr<void> storage,
                                          const std::vector<std::pair<std::string, TensorView>>& tensors,
                                          const ModelOptions& opt) {
  std::unique_ptr<Model> m(new Model());
  m->cfg_ = std::move(cfg);
  m->opt_ = opt;
  m->storage_ = std::move(storage);
  m->bind(tensors, "(in-memory model)");
  m->set_cache_dtype(opt.cache_dtype);
  return m;
}

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); i++) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}
}  // namespace

// Checks every tensor of the weight table for presence, format and exact shape, then binds
// views (2-d weights, no copy) or fp32 copies (small parameters).
void Model::bind(const std::vector<std::pair<std::string, TensorView>>& tensors, const std::string& where) {
  std::map<std::string, TensorView> by_name(tensors.begin(), tensors.end());
  std::vector<WeightSpec> table = weight_table(cfg_, w_);
  std::vector<std::string> missing;
  std::set<std::string> used;
  weight_bytes_ = 0;
  for (const WeightSpec& s : table) {
    auto it = by_name.find(s.name);
    if (it == by_name.end()) {
      missing.push_back(s.name);
      continue;
    }
    used.insert(s.name);
    const TensorView& v = it->second;
    if (v.dtype != DType::F32 && v.dtype != DType::BF16 && v.dtype != DType::F16)
      fail(where, ": tensor '", s.name, "' is stored as ", dtype_name(v.dtype),
           "; supported weight formats are F32, BF16 and F16");
    std::vector<int64_t> got(v.shape.begin(), v.shape.begin() + v.ndim);
    if (got != s.shape)
      fail(where, ": tensor '", s.name, "' has shape ", shape_str(got), " but the config requires ",
           shape_str(s.shape));
    weight_bytes_ += int64_t(v.nbytes());
    if (s.matrix) {
      *s.matrix = WeightView{v.data, v.dtype, s.shape[0], s.shape[1]};
    } else {
      s.small->resize(size_t(s.numel()));
      convert_to_f32(v.dtype, v.data, s.small->data(), size_t(s.numel()));
    }
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 5; i++) list += "\n  " + missing[i];
    if (missing.size() > 5) list += "\n  ... and " + std::to_string(missing.size() - 5) + " more";
    fail(where, ": ", missing.size(), " tensor(s) required by config.json are missing:", list);
  }
  if (cfg_.tie_word_embeddings) w_.lm_head = w_.embed_tokens;

  // Fingerprint: FNV-1a over the config and, per tensor, its name, format, shape and up to
  // 64 bytes at its start, middle and end (cheap even for a 98 GB checkpoint).
  uint64_t fp = 1469598103934665603ull;
  auto mix = [&](const void* p, size_t n) {
    for (size_t i = 0; i < n; i++) fp = (fp ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  };
  const std::string cj = config_to_json(cfg_);
  mix(cj.data(), cj.size());
  for (const WeightSpec& s : table) {
    const TensorView& v = by_name.at(s.name);
    mix(s.name.data(), s.name.size());
    mix(&v.dtype, 1);
    const size_t nb = v.nbytes(), take = std::min<size_t>(64, nb);
    const unsigned char* b = static_cast<const unsigned char*>(v.data);
    mix(b, take);
    mix(b + (nb - take) / 2, take);
    mix(b + nb - take, take);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fp);
  fingerprint_ = hex;
  extra_.clear();
  for (const auto& [name, v] : tensors)
    if (!used.count(name)) extra_.push_back(name);

  slot_.assign(size_t(cfg_.num_hidden_layers), 0);
  int64_t nk = 0, nm = 0;
  for (int64_t l = 0; l < cfg_.num_hidden_layers; l++)
    slot_[size_t(l)] = cfg_.mixer[size_t(l)] == MixerKind::Kda ? nk++ : nm++;
  if (cfg_.kda_head_dim > 512) fail(where, ": linear_attn_config.head_dim above 512 is not supported");
  if (cfg_.num_experts > 4096) fail(where, ": num_experts above 4096 is not supported");
}

SequenceState Model::new_state() const {
  SequenceState s;
  const int64_t H = cfg_.kda_num_heads, D = cfg_.kda_head_dim, P = cfg_.kda_proj_dim();
  const int64_t W = cfg_.short_conv_kernel_size;
  s.kda.resize(size_t(cfg_.n_kda_layers()));
  for (auto& k : s.kda) {
    k.recurrent.resize(size_t(H * D * D));
    k.conv.resize(size_t(3 * (W - 1) * P));
  }
  s.mla.assign(size_t(cfg_.n_mla_layers()), LatentCache(cfg_.mla_cache_width(), cache_dtype()));
  return s;
}

void Model::set_cache_dtype(std::optional<DType> t) {
  if (!t) t = w_.lm_head.dtype == DType::F32 ? DType::F32 : DType::BF16;  // the weights' format
  if (*t != DType::F32 && *t != DType::BF16)
    fail("the MLA cache can be F32 or BF16, not ", dtype_name(*t));
  opt_.cache_dtype = t;
}

StateSizes Model::state_sizes() const {
  StateSizes z;
  const int64_t nk = cfg_.n_kda_layers(), nm = cfg_.n_mla_layers();
  z.kda_recurrent_bytes = nk * cfg_.kda_num_heads * cfg_.kda_head_dim * cfg_.kda_head_dim * 4;
  z.kda_conv_bytes = nk * 3 * (cfg_.short_conv_kernel_size - 1) * cfg_.kda_proj_dim() * 4;
  z.mla_values_per_token_per_layer = cfg_.mla_cache_width();
  z.mla_cache_bytes_per_token = nm * cfg_.mla_cache_width() * int64_t(dtype_size(cache_dtype()));
  return z;
}

int64_t Model::logits_rows(const Batch& b) {
  if (b.logits == LogitsFor::None) return 0;
  if (b.logits == LogitsFor::LastOfEachRun) return int64_t(b.runs.size());
  int64_t n = 0;
  for (const SeqRun& r : b.runs) n += r.n;
  return n;
}

void Model::forward(const Context& ctx, const Batch& batch, Workspace& ws, float* logits,
                    ForwardTrace* trace) const {
  const KimiConfig& c = cfg_;
  const int64_t d = c.hidden_size;
  // Lay the runs out one after another; every position-independent op sees all T tokens.
  std::vector<RunSpan> runs;
  int64_t T = 0;
  for (const SeqRun& r : batch.runs) {
    if (r.n <= 0) fail("forward: a run has no tokens");
    if (r.state->kda.size() != size_t(c.n_kda_layers()) || r.state->mla.size() != size_t(c.n_mla_layers()))
      fail("forward: the sequence state was made for another model");
    runs.push_back({T, r.n, r.state->n_tokens, r.state});
    T += r.n;
  }
  if (ctx.pool && ctx.pool->size() > ws.n_threads)
    fail("forward: the workspace was sized for ", ws.n_threads, " threads, the pool has ", ctx.pool->size());
  if (T > ws.max_tokens) fail("forward: batch of ", T, " tokens exceeds the workspace (", ws.max_tokens, ")");
  if (T == 0) return;

  // spec §6: embedding lookup (no scaling).
  float* x = ws.x.data();
  for (size_t i = 0; i < runs.size(); i++)
    for (int64_t j = 0; j < runs[i].n; j++) {
      const int32_t tok = batch.runs[i].tokens[j];
      if (tok < 0 || tok >= c.vocab_size)
        fail("token id ", tok, " is outside the vocabulary (0..", c.vocab_size - 1, ")");
      convert_to_f32(w_.embed_tokens.dtype, w_.embed_tokens.row(tok), x + (runs[i].offset + j) * d, size_t(d));
    }
  auto record = [&](const float* h) {
    if (trace) trace->hidden.emplace_back(h, h + T * d);
  };
  if (trace) {
    trace->hidden.clear();
    trace->router.clear();
  }
  record(x);

  BlockIO io{&ctx, &c, &ws, runs, T, ws.xn.data(), ws.mix.data()};
  const float eps = float(c.rms_norm_eps);
  for (int64_t l = 0; l < c.num_hidden_layers; l++) {  // the layer loop (spec §6)
    const LayerWeights& L = w_.layers[size_t(l)];
    rmsnorm_rows(x, d, L.input_layernorm.data(), eps, T, d, ws.xn.data(), d);
    if (L.mixer == MixerKind::Kda)
      kda_forward(io, L.kda, slot_[size_t(l)]);
    else
      mla_forward(io, L.mla, slot_[size_t(l)]);
    for (int64_t i = 0; i < T * d; i++) x[i] += ws.mix[size_t(i)];

    rmsnorm_rows(x, d, L.post_attention_layernorm.data(), eps, T, d, ws.xn.data(), d);
    if (L.ffn == FfnKind::Dense) {
      mlp_forward(io, L.mlp);
    } else {
      RouterTrace* rt = trace ? &trace->router.emplace_back() : nullptr;
      moe_forward(io, L.moe, opt_.router_weights, rt);
    }
    for (int64_t i = 0; i < T * d; i++) x[i] += ws.mix[size_t(i)];
    record(x);
  }
  for (const RunSpan& r : runs) r.state->n_tokens += r.n;

  // Final norm and lm_head, only for the rows asked for.
  if (trace) {
    rmsnorm_rows(x, d, w_.final_norm.data(), eps, T, d, ws.fin.data(), d);
    record(ws.fin.data());
  }
  if (batch.logits == LogitsFor::None) return;
  int64_t n_out = 0;
  if (batch.logits == LogitsFor::AllTokens) {
    rmsnorm_rows(x, d, w_.final_norm.data(), eps, T, d, ws.fin.data(), d);
    n_out = T;
  } else {
    for (const RunSpan& r : runs)
      rmsnorm(x + (r.offset + r.n - 1) * d, w_.final_norm.data(), eps, d, ws.fin.data() + (n_out++) * d);
  }
  matmul(ctx, w_.lm_head, ws.fin.data(), n_out, logits);
}

}  // namespace kl
