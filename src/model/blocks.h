// The named blocks of a decoder layer (STYLE.md habit 6). Each reads normalized input rows
// for all tokens of the batch and writes its output rows; per-sequence work loops over runs.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/kernels.h"
#include "model/config.h"
#include "model/state.h"
#include "model/weights.h"
#include "model/workspace.h"

namespace kl {

// Tokens [offset, offset+n) of the batch belong to `state`, at positions [pos0, pos0+n).
struct RunSpan {
  int64_t offset = 0;
  int64_t n = 0;
  int64_t pos0 = 0;
  SequenceState* state = nullptr;
};

struct BlockIO {
  const Context* ctx = nullptr;
  const KimiConfig* cfg = nullptr;
  Workspace* ws = nullptr;
  std::span<const RunSpan> runs;
  int64_t T = 0;          // tokens in the batch
  const float* x = nullptr;  // [T, hidden] normalized input
  float* out = nullptr;      // [T, hidden]
};

enum class RouterWeights { Unbiased, Biased };  // spec Decisions 1

// Optional record of routing decisions (tests): per token the chosen experts sorted by id
// and their weights in the same order.
struct RouterTrace {
  std::vector<int32_t> idx;   // [T, k]
  std::vector<float> weight;  // [T, k]
};

void kda_forward(const BlockIO& io, const KdaWeights& w, int64_t slot);
void mla_forward(const BlockIO& io, const MlaWeights& w, int64_t slot);
void moe_forward(const BlockIO& io, const MoeWeights& w, RouterWeights mode, RouterTrace* trace);
void mlp_forward(const BlockIO& io, const MlpWeights& w);

}  // namespace kl
