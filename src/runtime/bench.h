// `kimi-linear bench`: prompt processing (pp) and generation (tg) speed at several context
// depths, against the machine's own limits measured in the same run.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/machine_limits.h"
#include "runtime/engine.h"

namespace kl {

struct BenchOptions {
  int64_t n_prompt = 512;
  int64_t n_gen = 128;
  std::vector<int64_t> depths = {0};
  int64_t repetitions = 1;
  bool measure_limits = true;
  size_t bandwidth_buffer_bytes = size_t(1) << 30;  // far beyond the last-level cache
  // The bandwidth a tg run had is sampled while it runs: a read pass over the lm_head weights
  // every `probe_every` steps (see run_bench), when they are at least `probe_min_bytes` (far
  // beyond the last-level cache); smaller models are judged by probes around the run only.
  int64_t probe_every = 8;
  size_t probe_min_bytes = size_t(256) << 20;
};

// What one token costs in the model's terms (from the weight table).
struct TokenCost {
  double decode_weight_bytes = 0;   // weights one decode step reads (active experts only)
  double state_bytes = 0;           // KDA recurrent + conv state, read and written once each
  double cache_bytes_per_ctx = 0;   // MLA latent bytes read per token of context
  double prefill_flops = 0;         // matmul FLOPs per prompt token (lm_head excluded)
};
TokenCost token_cost(const Model& m);
// FLOPs of MLA attention (all MLA layers, every head) for n prompt tokens after ctx0 cached ones,
// in the form the model picks (mla_cheaper_form): the products over the cache that grow with
// the context. The KDA core and the softmax are not counted.
double mla_attention_flops(const Model& m, int64_t n, int64_t ctx0);

struct MachineLimits {
  double bandwidth_gbs = 0;
  ReadPattern read_pattern = ReadPattern::Sequential;  // the faster read on this machine
  double peak_gflops = 0;
  std::string peak_kind;  // "fp32 FMA" or "bf16 dot"
};
MachineLimits measure_limits(Engine& e, const BenchOptions& o);

// Runs every test; `report` gets each result as it is measured (for live table output).
nlohmann::json run_bench(Engine& e, const BenchOptions& o, const MachineLimits& lim,
                         const std::function<void(const nlohmann::json&)>& report);

int64_t peak_rss_bytes();
void reset_peak_rss();

}  // namespace kl
