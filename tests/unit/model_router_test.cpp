// Grouped top-k routing (spec §5.2 step 4) on a synthetic model with several expert groups:
// only experts of the best `topk_group` groups (group score = sum of its two best biased
// scores) are chosen, and weights are renormalized and scaled.
#include <gtest/gtest.h>

#include <set>

#include "model/synthetic.h"
#include "model_test_util.h"

namespace kl::test {
namespace {

TEST(Router, GroupedTopKStaysInTheBestGroups) {
  Engine e;
  KimiConfig c = builtin_config();
  c.vocab_size = 600;
  c.bos_token_id = 597;
  c.eos_token_id = 598;
  c.pad_token_id = 599;
  c.num_experts = 16;
  c.num_expert_group = 4;  // groups of 4 experts
  c.topk_group = 2;
  c.num_experts_per_token = 4;
  c = parse_config(config_to_json(c), "(test)");
  SyntheticWeights w = make_synthetic_weights(c, DType::F32, 3, &e.pool);
  auto m = Model::from_memory(c, w.storage, w.tensors, {});
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; i++) tokens.push_back((i * 37) % 600);
  ForwardTrace trace;
  run_chunks(*m, e, tokens, {40}, nullptr, &trace);
  ASSERT_FALSE(trace.router.empty());
  for (const RouterTrace& rt : trace.router) {
    for (size_t t = 0; t < tokens.size(); t++) {
      std::set<int> groups;
      float sum = 0;
      for (int j = 0; j < 4; j++) {
        groups.insert(rt.idx[t * 4 + size_t(j)] / 4);
        sum += rt.weight[t * 4 + size_t(j)];
      }
      EXPECT_LE(groups.size(), 2u) << "token " << t << " uses experts of more than topk_group groups";
      EXPECT_NEAR(sum, 2.446f, 1e-4f);  // renormalized, times routed_scaling_factor
    }
  }
}

}  // namespace
}  // namespace kl::test
