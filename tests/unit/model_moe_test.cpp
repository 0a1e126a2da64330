// The MoE block's expert groups (model/moe.cpp): experts run in groups of at most
// Workspace::moe_group_rows gathered rows, each group's gate/up and down projections in one
// batched call. However the experts fall into groups, the logits match the reference goldens.
#include <gtest/gtest.h>

#include "model_test_util.h"

namespace kl::test {
namespace {

std::vector<float> run_with_group_rows(const Model& m, Engine& e, const std::vector<int32_t>& tokens,
                                       int64_t chunk, int64_t group_rows) {
  const int64_t V = m.config().vocab_size;
  SequenceState st = m.new_state();
  Workspace ws(m.config(), chunk, e.pool.size());
  if (group_rows > 0) ws.moe_group_rows = group_rows;
  std::vector<float> logits(tokens.size() * size_t(V));
  for (int64_t off = 0; off < int64_t(tokens.size()); off += chunk) {
    Batch b;
    b.runs.push_back({&st, tokens.data() + off, std::min<int64_t>(chunk, int64_t(tokens.size()) - off)});
    b.logits = LogitsFor::AllTokens;
    m.forward(e.ctx, b, ws, logits.data() + off * V);
  }
  return logits;
}

TEST(MoeGroups, AnyGroupingMatchesTheGoldens) {
  const auto tokens = load_tokens("tokens_200.npy");
  const std::vector<float> want = read_npy(golden("logits_200.npy")).as_f32();
  const float scale = max_abs(want.data(), want.size());
  ModelOptions opt;
  opt.router_weights = RouterWeights::Biased;  // as the goldens were made (see the golden tests)
  auto m = Model::load(tiny_a(), opt);
  ASSERT_EQ(m->config().num_experts_per_token, 2);
  for (int threads : {1, 2}) {
    Engine e(threads);
    // 8-token chunks: 8 rows of the shared expert and 16 routed ones. Groups of 8 rows put the
    // shared expert alone and split the routed ones; the default (256) takes them all at once.
    const auto small = run_with_group_rows(*m, e, tokens, 8, 8);
    const auto whole = run_with_group_rows(*m, e, tokens, 8, 0);
    EXPECT_LE(max_abs_diff(small.data(), want.data(), want.size()), 1e-4f * scale) << "threads " << threads;
    EXPECT_LE(max_abs_diff(whole.data(), want.data(), want.size()), 1e-4f * scale) << "threads " << threads;
    EXPECT_LE(max_abs_diff(small.data(), whole.data(), want.size()), 1e-5f * scale) << "threads " << threads;
  }
}

}  // namespace
}  // namespace kl::test
