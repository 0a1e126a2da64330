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
  const int64_t F = w.gate.rows, d = w.gate.cols;
  const MatmulJob gate_up[2] = {{&w.gate, x, n, d, ws.fg.data(), F}, {&w.up, x, n, d, ws.fu.data(), F}};
  matmul_batch(ctx, gate_up, 2);
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

// Most experts in one group (the jobs of a batched matmul call are bounded).
constexpr int64_t kMaxGroupExperts = 64;

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

  // The experts in groups of at most ws.moe_group_rows gathered rows (decode: the shared expert
  // and every routed one in a single group): the gate and up projections of the whole group in
  // one threaded call, SwiGLU, the down projections in another, then the weighted sum. The shared
  // expert counts as expert E with every token and weight 1, added first (spec §5.3).
  std::memset(io.out, 0, sizeof(float) * size_t(T * d));
  const bool shared = !w.shared.gate.empty();
  const int64_t cap = ws.moe_group_rows;
  KL_ASSERT(T <= cap);  // a lone expert (the shared one has every token) always fits
  MatmulJob gu[2 * kMaxGroupExperts], dn[kMaxGroupExperts];
  int32_t members[kMaxGroupExperts];
  int64_t n_members = 0, rows = 0;
  auto expert_rows = [&](int64_t e) -> int64_t {
    return e == E ? T : ws.expert_offset[size_t(e + 1)] - ws.expert_offset[size_t(e)];
  };
  auto flush = [&] {
    int64_t r = 0, fo = 0;  // row offset in fx/fy, float offset in fg/fu
    for (int64_t m = 0; m < n_members; m++) {
      const int64_t e = members[m], n = expert_rows(e);
      const MlpWeights& mw = e == E ? w.shared : w.experts[size_t(e)];
      const int64_t F = mw.gate.rows;
      for (int64_t i = 0; i < n; i++) {
        const int64_t tok = e == E ? i : ws.expert_tokens[size_t(ws.expert_offset[size_t(e)] + i)];
        std::memcpy(ws.fx.data() + (r + i) * d, io.x + tok * d, sizeof(float) * size_t(d));
      }
      gu[2 * m] = {&mw.gate, ws.fx.data() + r * d, n, d, ws.fg.data() + fo, F};
      gu[2 * m + 1] = {&mw.up, ws.fx.data() + r * d, n, d, ws.fu.data() + fo, F};
      dn[m] = {&mw.down, ws.fg.data() + fo, n, F, ws.fy.data() + r * d, d};
      r += n;
      fo += n * F;
    }
    matmul_batch(ctx, gu, 2 * n_members);
    swiglu(ws.fg.data(), ws.fu.data(), fo);
    matmul_batch(ctx, dn, n_members);
    for (int64_t m = 0; m < n_members; m++) {  // each expert's rows are where its down job wrote them
      const int64_t e = members[m];
      for (int64_t i = 0; i < dn[m].n; i++) {
        const int64_t slot = e == E ? -1 : ws.expert_slot[size_t(ws.expert_offset[size_t(e)] + i)];
        const float wt = slot < 0 ? 1.f : ws.rweight[size_t(slot)];
        float* o = io.out + (slot < 0 ? i : slot / k) * d;
        const float* y = dn[m].y + i * d;
        for (int64_t j = 0; j < d; j++) o[j] += wt * y[j];
      }
    }
    n_members = 0;
    rows = 0;
  };
  // Shared expert first (E stands for it), then the routed experts in id order.
  for (int64_t q = shared ? -1 : 0; q < E; q++) {
    const int64_t e = q < 0 ? E : q, n = expert_rows(e);
    if (n == 0) continue;  // decode touches only the active experts
    if (n_members == kMaxGroupExperts || rows + n > cap) flush();
    members[n_members++] = int32_t(e);
    rows += n;
  }
  if (n_members > 0) flush();
}

}  // namespace kl
