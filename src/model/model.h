// A loaded Kimi Linear model and its forward pass (DESIGN.md §2, §6): the narrow interface the
// runtime talks to: load, new state, forward(batch, states, out), state sizes.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "kernels/kernels.h"
#include "model/blocks.h"
#include "model/config.h"
#include "model/state.h"
#include "model/weights.h"
#include "model/workspace.h"

namespace kl {

class SafetensorsSet;

struct ModelOptions {
  RouterWeights router_weights = RouterWeights::Unbiased;  // spec Decisions 1
  // Storage of the MLA latent cache in new states: F32 (exact) or BF16 (half the memory and bf16
  // attention products; see kernels/attention.h). Unset (the default): the format the model's
  // weights compute in, as the reference runs them: F32 for F32 weights, BF16 for any other
  // (bf16, f16 and quantized checkpoints; vLLM's "auto" and llama.cpp's f16 cache do the same).
  std::optional<DType> cache_dtype;
  // How the weight files get into memory (core/mapped_file.h): mapped (the default) or read into
  // private memory on 2 MiB pages (resident, a slower start, the whole model in RAM).
  FileAccess weights_access = FileAccess::Map;
};

// One run of tokens of one sequence; the batch is a list of runs (DESIGN.md §2).
struct SeqRun {
  SequenceState* state = nullptr;
  const int32_t* tokens = nullptr;
  int64_t n = 0;
};

enum class LogitsFor { AllTokens, LastOfEachRun, None };

struct Batch {
  std::vector<SeqRun> runs;
  LogitsFor logits = LogitsFor::LastOfEachRun;
};

// Optional record of intermediate values (tests, debugging).
struct ForwardTrace {
  // [layers + 2][T * hidden]: the embedding, the residual after each layer, the final norm.
  std::vector<std::vector<float>> hidden;
  std::vector<RouterTrace> router;  // one per MoE layer, in layer order
};

// Byte sizes the runtime and `inspect` ask for; the runtime never looks at layer kinds.
struct StateSizes {
  int64_t kda_recurrent_bytes = 0;    // all KDA layers, per sequence
  int64_t kda_conv_bytes = 0;         // all KDA layers, per sequence (W-1 columns kept)
  int64_t mla_cache_bytes_per_token = 0;  // all MLA layers, latent rows in the cache's dtype
  int64_t mla_values_per_token_per_layer = 0;
};

class Model {
 public:
  // Loads DIR/config.json and the safetensors weights (one file or an index of shards).
  static std::unique_ptr<Model> load(const std::string& dir, const ModelOptions& opt);
  // A model over weights held in memory (synthetic models); `storage` keeps them alive.
  static std::unique_ptr<Model> from_memory(KimiConfig cfg, std::shared_ptr<void> storage,
                                            const std::vector<std::pair<std::string, TensorView>>& tensors,
                                            const ModelOptions& opt);
  ~Model();

  const KimiConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  const ModelOptions& options() const { return opt_; }
  void set_router_weights(RouterWeights r) { opt_.router_weights = r; }
  // Applies to states made after the call (F32 or BF16; anything else throws; unset: as the
  // weights, see ModelOptions).
  void set_cache_dtype(std::optional<DType> t);
  // The storage of the MLA cache of new states (resolved: F32 or BF16).
  DType cache_dtype() const { return *opt_.cache_dtype; }
  // Tensors present in the files but not used by the model (reported, not an error).
  const std::vector<std::string>& extra_tensors() const { return extra_; }
  int64_t weight_bytes() const { return weight_bytes_; }
  // Identifies the model (config + names, formats, shapes and sampled bytes of every tensor):
  // saved sessions carry it so a file made for another model is refused.
  const std::string& fingerprint() const { return fingerprint_; }

  SequenceState new_state() const;
  StateSizes state_sizes() const;

  // Runs every run of `batch` through the model, advancing each run's state. Writes logits for
  // the requested positions to `logits` ([n_out, vocab]) in batch order. Total tokens must not
  // exceed ws.max_tokens.
  void forward(const Context& ctx, const Batch& batch, Workspace& ws, float* logits,
               ForwardTrace* trace = nullptr) const;
  // Rows of logits `forward` writes for this batch.
  static int64_t logits_rows(const Batch& batch);

 private:
  Model() = default;
  void bind(const std::vector<std::pair<std::string, TensorView>>& tensors, const std::string& where);

  KimiConfig cfg_;
  ModelOptions opt_;
  ModelWeights w_;
  std::vector<int64_t> slot_;  // layer -> index into SequenceState::kda or ::mla
  std::unique_ptr<SafetensorsSet> files_;
  std::shared_ptr<void> storage_;
  std::vector<std::string> extra_;
  int64_t weight_bytes_ = 0;
  std::string fingerprint_;
};

}  // namespace kl
