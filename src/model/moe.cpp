// MoE (spec §5): sigmoid router with a selection-only correction bias, grouped top-k,
// renormalized and scaled weights, experts run once over the tokens routed to them, plus the
// shared expert. Also the dense SwiGLU MLP.
#include <algorithm>
#include <cstring>
#include <cmath>
#include <numeric>

#include "core/error.h"

#include "kernels/ops.h"
#include "model/blocks.h"

namespace kl {

namespace {

// y [n, hidden] = down(SiLU(gate x) ⊙ up x) for n rows of x.
void swiglu_mlp(const Context& ctx, const MlpWeights& w, const float* x, int64_t n, Workspace& ws, float* y) {
  const int64_t F = w.gate.rows;
  matmul(ctx, w.gate, x, n, ws.fg.data());
  matmul(ctx, w.up, x, n, ws.fu.data());
  swiglu(ws.fg.data(), ws.fu.data(), n * F);
  matmul(ctx, w.down, ws.fg.data(), n, y);
}

// spec §5.2 steps 3-5 for one token: choose k experts by biased score, groups first.
void select_experts(const KimiConfig& c, const float* biased, int32_t* idx) {
  const int64_t E = c.num_experts, k = c.num_experts_per_token;
  const int64_t G = c.use_grouped_topk ? c.num_expert_group : 1;
  const int64_t per = E / G;
  bool allowed[4096];
  KL_ASSERT(E <= 4096);
  if (G > 1 && c.topk_group < G) {
    // Group score: sum of the two best biased scores in the group (DeepSeek-V3 / HF).
    std::vector<std::pair<float, int64_t>> gs;
    for (int64_t g = 0; g < G; g++) {
      float b1 = -INFINITY, b2 = -INFINITY;
      for (int64_t e = g * per; e < (g + 1) * per; e++) {
        if (biased[e] > b1) {
          b2 = b1;
          b1 = biased[e];
        } else if (biased[e] > b2) {
          b2 = biased[e];
        }
      }
      gs.push_back({per > 1 ? b1 + b2 : b1, g});
    }
    std::stable_sort(gs.begin(), gs.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::fill(allowed, allowed + E, false);
    for (int64_t i = 0; i < c.topk_group; i++)
      for (int64_t e = gs[size_t(i)].second * per; e < (gs[size_t(i)].second + 1) * per; e++) allowed[e] = true;
  } else {
    std::fill(allowed, allowed + E, true);
  }
  // Top-k by biased score; ties go to the lower expert id.
  for (int64_t j = 0; j < k; j++) {
    int32_t best = -1;
    for (int64_t e = 0; e < E; e++) {
      if (!allowed[e]) continue;
      if (best < 0 || biased[e] > biased[best]) best = int32_t(e);
    }
    idx[j] = best;
    allowed[best] = false;
  }
}

}  // namespace

void mlp_forward(const BlockIO& io, const MlpWeights& w) { swiglu_mlp(*io.ctx, w, io.x, io.T, *io.ws, io.out); }

void moe_forward(const BlockIO& io, const MoeWeights& w, RouterWeights mode, RouterTrace* trace) {
  const Context& ctx = *io.ctx;
  const KimiConfig& c = *io.cfg;
  Workspace& ws = *io.ws;
  const int64_t T = io.T, E = c.num_experts, k = c.num_experts_per_token, d = c.hidden_size;

  // spec §5.2: fp32 router logits -> sigmoid; experts chosen on score + correction bias.
  matmul(ctx, w.router, io.x, T, ws.rlogits.data());  // [T, E]
  float biased[4096];
  for (int64_t t = 0; t < T; t++) {
    float* s = ws.rlogits.data() + t * E;  // becomes sigmoid scores in place
    for (int64_t e = 0; e < E; e++) {
      s[e] = sigmoidf(s[e]);
      biased[e] = s[e] + w.correction_bias[size_t(e)];
    }
    int32_t* idx = ws.ridx.data() + t * k;
    float* wt = ws.rweight.data() + t * k;
    select_experts(c, biased, idx);
    // Weights: unbiased sigmoid scores (default) or the released code's biased ones.
    float sum = 0.f;
    for (int64_t j = 0; j < k; j++) {
      wt[j] = mode == RouterWeights::Biased ? biased[idx[j]] : s[idx[j]];
      sum += wt[j];
    }
    const float norm = c.moe_renormalize ? 1.f / (sum + 1e-20f) : 1.f;
    for (int64_t j = 0; j < k; j++) wt[j] *= norm * float(c.routed_scaling_factor);
  }
  if (trace) {
    trace->idx.assign(size_t(T * k), 0);
    trace->weight.assign(size_t(T * k), 0.f);
    for (int64_t t = 0; t < T; t++) {
      std::vector<int64_t> order(static_cast<size_t>(k));
      std::iota(order.begin(), order.end(), 0);
      const int32_t* idx = ws.ridx.data() + t * k;
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return idx[a] < idx[b]; });
      for (int64_t j = 0; j < k; j++) {
        trace->idx[size_t(t * k + j)] = idx[order[size_t(j)]];
        trace->weight[size_t(t * k + j)] = ws.rweight[size_t(t * k + order[size_t(j)])];
      }
    }
  }

  // Group the (token, slot) pairs by expert so each expert runs once over its tokens.
  std::fill(ws.expert_count.begin(), ws.expert_count.end(), 0);
  for (int64_t i = 0; i < T * k; i++) ws.expert_count[size_t(ws.ridx[size_t(i)])]++;
  ws.expert_offset[0] = 0;
  for (int64_t e = 0; e < E; e++) ws.expert_offset[size_t(e + 1)] = ws.expert_offset[size_t(e)] + ws.expert_count[size_t(e)];
  std::fill(ws.expert_count.begin(), ws.expert_count.end(), 0);
  for (int64_t i = 0; i < T * k; i++) {  // in token order, so each group is sorted by token
    const int32_t e = ws.ridx[size_t(i)];
    const int32_t pos = ws.expert_offset[size_t(e)] + ws.expert_count[size_t(e)]++;
    ws.expert_tokens[size_t(pos)] = int32_t(i / k);
    ws.expert_slot[size_t(pos)] = int32_t(i);
  }

  // Shared expert first: out = shared(x); then the routed experts are added onto it.
  if (!w.shared.gate.empty()) {
    swiglu_mlp(ctx, w.shared, io.x, T, ws, io.out);
  } else {
    std::memset(io.out, 0, sizeof(float) * size_t(T * d));
  }
  for (int64_t e = 0; e < E; e++) {
    const int32_t b = ws.expert_offset[size_t(e)], n = ws.expert_offset[size_t(e + 1)] - b;
    if (n == 0) continue;  // decode touches only the active experts
    for (int32_t i = 0; i < n; i++)
      std::memcpy(ws.fx.data() + i * d, io.x + int64_t(ws.expert_tokens[size_t(b + i)]) * d, sizeof(float) * size_t(d));
    swiglu_mlp(ctx, w.experts[size_t(e)], ws.fx.data(), n, ws, ws.fy.data());
    for (int32_t i = 0; i < n; i++) {
      const float wt = ws.rweight[size_t(ws.expert_slot[size_t(b + i)])];
      float* o = io.out + int64_t(ws.expert_tokens[size_t(b + i)]) * d;
      const float* y = ws.fy.data() + i * d;
      for (int64_t j = 0; j < d; j++) o[j] += wt * y[j];
    }
  }
}

}  // namespace kl
