#include "runtime/engine.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "model/state_io.h"
#include "model/synthetic.h"

namespace kl {

Engine::Engine(const ModelSource& src, const EngineOptions& opt) {
  init(opt);
  if (src.builtin()) {
    builtin_ = true;
    // Seeded: the same built-in model on every machine and thread count.
    model_ = make_synthetic_model(builtin_config(), DType::BF16, 20251030, pool_.get(), src.options);
  } else {
    model_ = Model::load(src.dir, src.options);
  }
}

Engine::Engine(std::unique_ptr<Model> model, const EngineOptions& opt) : model_(std::move(model)) { init(opt); }

void Engine::init(const EngineOptions& opt) {
  opt_ = opt;
  if (opt_.threads < 0) fail("thread count must be positive (got ", opt_.threads, ")");
  if (opt_.threads == 0) opt_.threads = default_thread_count();
  if (opt_.prefill_chunk < 1) fail("prefill chunk must be at least 1 token");
  pool_ = std::make_unique<ThreadPool>(opt_.threads);
  cpu_ = CpuFeatures::detect();
  const Isa isa = opt_.isa.value_or(cpu_.best_isa());
  kernels_ = kernels_for(isa, cpu_);
  kernels_.bf16_activations = opt_.bf16_activations && kernels_.matmul_rows_bf16_dot != nullptr;
  ctx_.pool = pool_.get();
  ctx_.k = &kernels_;
}

void Engine::set_threads(int n) {
  if (n < 1) fail("thread count must be at least 1 (got ", n, ")");
  pool_ = std::make_unique<ThreadPool>(n);
  opt_.threads = n;
  ctx_.pool = pool_.get();
}

std::string Engine::describe() const {
  const KimiConfig& c = model_->config();
  return std::to_string(c.num_hidden_layers) + " layers (" + std::to_string(c.n_kda_layers()) + " KDA, " +
         std::to_string(c.n_mla_layers()) + " MLA), " + std::string(dtype_name(model_->weights().lm_head.dtype)) +
         " weights, " + std::to_string(pool_->size()) + " thread(s), kernels: " + isa_name(ctx_.k->isa) +
         (ctx_.k->bf16_activations ? " (bf16 activations)" : "") +
         (model_->cache_dtype() == DType::BF16 ? ", bf16 latent cache" : ", f32 latent cache");
}

Session::Session(Engine& engine)
    : engine_(engine),
      state_(engine.model().new_state()),
      ws_(engine.model().config(), engine.options().prefill_chunk, engine.pool().size()),
      logits_(size_t(engine.model().config().vocab_size)) {}

void Session::check_tokens(const std::vector<int32_t>& tokens) const {
  // Checked before anything is fed, so a bad id in a late chunk leaves the session untouched.
  if (tokens.empty()) fail("no tokens to feed");
  const int64_t vocab = engine_.model().config().vocab_size;
  for (size_t i = 0; i < tokens.size(); i++)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      fail("token id ", tokens[i], " at position ", i, " is outside the vocabulary (0..", vocab - 1, ")");
  check_room(int64_t(tokens.size()));
}

void Session::check_room(int64_t n) const {
  const int64_t max = engine_.model().config().model_max_length;
  if (state_.n_tokens + n > max)
    fail("the context would hold ", state_.n_tokens + n, " tokens, more than the model's maximum of ", max,
         " (model_max_length)");
}

const float* Session::feed(const std::vector<int32_t>& tokens, const Progress& progress) {
  check_tokens(tokens);
  const int64_t chunk = ws_.max_tokens, n = int64_t(tokens.size());
  for (int64_t off = 0; off < n; off += chunk) {
    Batch b;
    const int64_t m = std::min(chunk, n - off);
    b.runs.push_back({&state_, tokens.data() + off, m});
    b.logits = off + m == n ? LogitsFor::LastOfEachRun : LogitsFor::None;
    engine_.model().forward(engine_.ctx(), b, ws_, logits_.data());
    tokens_.insert(tokens_.end(), tokens.begin() + off, tokens.begin() + off + m);
    if (progress) progress(off + m, n);
  }
  return logits_.data();
}

std::vector<float> Session::feed_all_logits(const std::vector<int32_t>& tokens, const Progress& progress) {
  check_tokens(tokens);
  const int64_t V = engine_.model().config().vocab_size;
  const int64_t chunk = ws_.max_tokens, n = int64_t(tokens.size());
  std::vector<float> out(size_t(n * V));
  for (int64_t off = 0; off < n; off += chunk) {
    Batch b;
    const int64_t m = std::min(chunk, n - off);
    b.runs.push_back({&state_, tokens.data() + off, m});
    b.logits = LogitsFor::AllTokens;
    engine_.model().forward(engine_.ctx(), b, ws_, out.data() + off * V);
    tokens_.insert(tokens_.end(), tokens.begin() + off, tokens.begin() + off + m);
    if (progress) progress(off + m, n);
  }
  std::copy(out.end() - V, out.end(), logits_.begin());
  return out;
}

void Session::save(const std::string& path) const { save_state(engine_.model(), state_, tokens_, path); }

void Session::load(const std::string& path) {
  std::vector<int32_t> toks;
  SequenceState s = load_state(engine_.model(), path, &toks);
  state_ = std::move(s);
  tokens_ = std::move(toks);
}

}  // namespace kl
