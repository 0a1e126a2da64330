// The model against the reference goldens of tests/data/tiny-a (computed by the released
// modeling_kimi.py in fp32; see tests/data/README.md).
#include <gtest/gtest.h>

#include "model_test_util.h"

namespace kl::test {
namespace {

class GoldenTest : public ::testing::TestWithParam<int> {};

// Logits at every position, both routing modes: max |diff| <= 1e-4 * max |logit|.
TEST_P(GoldenTest, LogitsMatchBothRouterModes) {
  const int L = GetParam();
  Engine e;
  const auto tokens = load_tokens("tokens_" + std::to_string(L) + ".npy");
  ASSERT_EQ(int(tokens.size()), L);
  for (RouterWeights mode : {RouterWeights::Biased, RouterWeights::Unbiased}) {
    ModelOptions opt;
    opt.router_weights = mode;
    auto m = Model::load(tiny_a(), opt);
    std::vector<float> got = run_chunks(*m, e, tokens, {L});
    const std::string file = std::string(mode == RouterWeights::Biased ? "" : "variant_unbiased_gate/") +
                             "logits_" + std::to_string(L) + ".npy";
    NpyArray ref = read_npy(golden(file));
    ASSERT_EQ(ref.shape, (std::vector<int64_t>{L, 512}));
    std::vector<float> want = ref.as_f32();
    const float scale = max_abs(want.data(), want.size());
    const float diff = max_abs_diff(got.data(), want.data(), want.size());
    EXPECT_LE(diff, 1e-4f * scale) << file << ": max|diff| " << diff << " vs max|logit| " << scale;
  }
}

// Hidden states after every layer and the chosen experts (released semantics).
TEST_P(GoldenTest, HiddenStatesAndRouting) {
  const int L = GetParam();
  Engine e;
  const auto tokens = load_tokens("tokens_" + std::to_string(L) + ".npy");
  ModelOptions opt;
  opt.router_weights = RouterWeights::Biased;
  auto m = Model::load(tiny_a(), opt);
  ForwardTrace trace;
  run_chunks(*m, e, tokens, {L}, nullptr, &trace);

  NpyArray hid = read_npy(golden("hidden_" + std::to_string(L) + ".npy"));
  const int64_t d = m->config().hidden_size, nl = m->config().num_hidden_layers;
  ASSERT_EQ(hid.shape, (std::vector<int64_t>{nl + 2, L, d}));
  ASSERT_EQ(int64_t(trace.hidden.size()), nl + 2);
  std::vector<float> want = hid.as_f32();
  for (int64_t i = 0; i < nl + 2; i++) {
    const float* w = want.data() + i * L * d;
    const float scale = max_abs(w, size_t(L * d));
    const float diff = max_abs_diff(trace.hidden[size_t(i)].data(), w, size_t(L * d));
    EXPECT_LE(diff, 1e-4f * std::max(scale, 1.f)) << "hidden state " << i << " of " << nl + 2;
  }

  std::vector<int64_t> idx = read_npy(golden("router_idx_" + std::to_string(L) + ".npy")).as_i64();
  std::vector<float> rw = read_npy(golden("router_weight_" + std::to_string(L) + ".npy")).as_f32();
  const int64_t k = m->config().num_experts_per_token;
  ASSERT_EQ(trace.router.size() * size_t(L * k), idx.size());
  for (size_t layer = 0; layer < trace.router.size(); layer++) {
    for (int64_t i = 0; i < L * k; i++) {
      ASSERT_EQ(trace.router[layer].idx[size_t(i)], idx[layer * size_t(L * k) + size_t(i)])
          << "MoE layer " << layer << " token " << i / k;
      EXPECT_NEAR(trace.router[layer].weight[size_t(i)], rw[layer * size_t(L * k) + size_t(i)], 1e-4f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(PromptLengths, GoldenTest, ::testing::Values(1, 7, 64, 65, 129, 200));

}  // namespace
}  // namespace kl::test
