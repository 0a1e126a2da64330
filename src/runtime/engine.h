// The runtime's view of a loaded model: the model, the thread pool and the kernel table,
// and sessions (one sequence each) that feed tokens through it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "model/model.h"

namespace kl {

struct EngineOptions {
  int threads = 0;                   // 0: all cores available to the process
  std::optional<Isa> isa;            // default: the best the CPU supports
  int64_t prefill_chunk = 512;       // prompt tokens per forward call (bounds activation memory)
  // BF16 weights times activations rounded to bf16 (AVX512_BF16 dot products): faster prompts,
  // slightly different numerics, so off by default. Ignored where the CPU has no such path.
  bool bf16_activations = false;
};

// Where the model comes from: a checkpoint directory, or the built-in synthetic model.
struct ModelSource {
  std::string dir;  // empty: built-in
  ModelOptions options;
  bool builtin() const { return dir.empty(); }
};

class Engine {
 public:
  Engine(const ModelSource& src, const EngineOptions& opt);
  Engine(std::unique_ptr<Model> model, const EngineOptions& opt);

  const Model& model() const { return *model_; }
  Model& model() { return *model_; }
  const Context& ctx() const { return ctx_; }
  ThreadPool& pool() { return *pool_; }
  const EngineOptions& options() const { return opt_; }
  bool builtin() const { return builtin_; }
  std::string describe() const;  // "8 layers, BF16 weights, 2 threads, avx512 (bf16, vnni)"
  // Replaces the pool (benchmarks sweep thread counts). No session may be running.
  void set_threads(int n);

 private:
  void init(const EngineOptions& opt);
  std::unique_ptr<Model> model_;
  std::unique_ptr<ThreadPool> pool_;
  CpuFeatures cpu_;
  Kernels kernels_;
  Context ctx_;
  EngineOptions opt_;
  bool builtin_ = false;
};

// Progress of long work: called with (done, total) tokens.
using Progress = std::function<void(int64_t done, int64_t total)>;

// One sequence: its state and the activation buffers sized for one prompt chunk.
class Session {
 public:
  explicit Session(Engine& engine);

  // Feeds `tokens` in chunks of the engine's prefill_chunk; returns the logits of the last
  // token ([vocab], valid until the next call). Errors if the context would exceed the model's
  // maximum length.
  const float* feed(const std::vector<int32_t>& tokens, const Progress& progress = nullptr);
  // All positions' logits of `tokens` ([n, vocab]); still chunked.
  std::vector<float> feed_all_logits(const std::vector<int32_t>& tokens, const Progress& progress = nullptr);
  const float* step(int32_t token) { return feed({token}); }

  int64_t n_tokens() const { return state_.n_tokens; }
  // Every token fed so far (the sequence's history).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // Persistent sessions: history + every KDA/conv state + the MLA latent cache.
  void save(const std::string& path) const;
  void load(const std::string& path);  // refuses files of another model or damaged ones
  int64_t vocab() const { return int64_t(logits_.size()); }
  SequenceState& state() { return state_; }
  void reset() {
    state_.reset();
    tokens_.clear();
  }
  const float* last_logits() const { return logits_.data(); }

 private:
  void check_room(int64_t n) const;
  void check_tokens(const std::vector<int32_t>& tokens) const;
  Engine& engine_;
  SequenceState state_;
  Workspace ws_;
  std::vector<float> logits_;
  std::vector<int32_t> tokens_;
};

}  // namespace kl
