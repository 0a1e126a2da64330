// Synthetic Kimi Linear models with seeded random weights, made by the engine itself: the
// built-in default model (so a new user sees the whole pipeline run without a download) and
// the benchmark model with the real 48B per-layer geometry.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/dtype.h"
#include "model/model.h"

namespace kl {

class ThreadPool;

// The built-in default: the real layer structure (KDA:MLA 3:1, layer 0 dense, MoE after) at a
// small width, with the real Kimi vocabulary size so the Kimi tokenizer fits it.
KimiConfig builtin_config();
// The real Kimi-Linear-48B-A3B per-layer geometry with `layers` layers: every fourth layer
// (1-based) is MLA, the rest KDA; layer 0 dense, the rest MoE.
KimiConfig synthetic_48b_config(int64_t layers);

struct SyntheticWeights {
  std::shared_ptr<void> storage;
  std::vector<std::pair<std::string, TensorView>> tensors;
};
// Random weights for every tensor of the weight table, in `format` (A_log and dt_bias are
// always F32, as in the real checkpoint). Deterministic for a seed, whatever the thread count.
SyntheticWeights make_synthetic_weights(const KimiConfig& c, DType format, uint64_t seed, ThreadPool* pool);

std::unique_ptr<Model> make_synthetic_model(const KimiConfig& c, DType format, uint64_t seed, ThreadPool* pool,
                                            const ModelOptions& opt);

// Writes an HF-layout directory (config.json + model.safetensors) other engines can load.
void save_hf_directory(const std::string& dir, const KimiConfig& c, const SyntheticWeights& w);

}  // namespace kl
