// Synthetic models: deterministic for a seed, and an HF directory written with --save loads
// back through the real loader and computes the same logits.
#include <gtest/gtest.h>

#include <filesystem>

#include "model/synthetic.h"
#include "model_test_util.h"

namespace kl::test {
namespace {

KimiConfig small_config() {
  KimiConfig c = builtin_config();
  c.vocab_size = 1000;
  c.bos_token_id = 997;
  c.eos_token_id = 998;
  c.pad_token_id = 999;
  return parse_config(config_to_json(c), "(test)");
}

TEST(Synthetic, SavedDirectoryLoadsBackWithTheSameLogits) {
  Engine e;
  const KimiConfig c = small_config();
  SyntheticWeights w = make_synthetic_weights(c, DType::BF16, 5, &e.pool);
  // The fp32 cache: with bf16 weights the default would be the bf16 cache, whose attention rounds
  // per tile, so the two chunkings below would differ by more than fp32 rounding.
  ModelOptions opt;
  opt.cache_dtype = DType::F32;
  auto mem = Model::from_memory(c, w.storage, w.tensors, opt);
  EXPECT_EQ(Model::from_memory(c, w.storage, w.tensors, {})->cache_dtype(), DType::BF16);  // "auto"
  const auto dir = std::filesystem::temp_directory_path() / ("kl_synth_" + std::to_string(::getpid()));
  save_hf_directory(dir.string(), c, w);
  auto disk = Model::load(dir.string(), opt);
  EXPECT_EQ(disk->fingerprint(), mem->fingerprint());
  EXPECT_EQ(disk->weights().layers[1].moe.experts[3].up.dtype, DType::BF16);
  EXPECT_EQ(disk->weights().layers[0].kda.q_proj.dtype, DType::BF16);
  const std::vector<int32_t> tokens = {1, 5, 900, 42, 7, 7, 7, 300};
  std::vector<float> a = run_chunks(*mem, e, tokens, {8});
  std::vector<float> b = run_chunks(*disk, e, tokens, {3, 5});
  EXPECT_LE(max_abs_diff(a.data(), b.data(), a.size()), 1e-5f * max_abs(a.data(), a.size()));
  std::filesystem::remove_all(dir);
}

TEST(Synthetic, SameSeedSameWeightsWhateverTheThreads) {
  const KimiConfig c = small_config();
  ThreadPool one(1), two(2);
  SyntheticWeights a = make_synthetic_weights(c, DType::F32, 9, &one);
  SyntheticWeights b = make_synthetic_weights(c, DType::F32, 9, &two);
  SyntheticWeights d = make_synthetic_weights(c, DType::F32, 10, &two);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  bool differs = false;
  for (size_t i = 0; i < a.tensors.size(); i++) {
    const TensorView &x = a.tensors[i].second, &y = b.tensors[i].second, &z = d.tensors[i].second;
    ASSERT_EQ(x.nbytes(), y.nbytes());
    EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes()), 0) << a.tensors[i].first;
    differs |= std::memcmp(x.data, z.data, x.nbytes()) != 0;
  }
  EXPECT_TRUE(differs);
}

// The benchmark geometry is the real 48B per-layer geometry (spec §1-§2).
TEST(Synthetic, BenchGeometryIsThe48BLayerGeometry) {
  KimiConfig c = synthetic_48b_config(4);
  EXPECT_EQ(c.hidden_size, 2304);
  EXPECT_EQ(c.kda_num_heads * c.kda_head_dim, 4096);
  EXPECT_EQ(c.kv_lora_rank + c.qk_rope_head_dim, 576);
  EXPECT_EQ(c.num_experts, 256);
  EXPECT_EQ(c.num_experts_per_token, 8);
  EXPECT_EQ(c.vocab_size, 163840);
  std::vector<MixerKind> want = {MixerKind::Kda, MixerKind::Kda, MixerKind::Kda, MixerKind::Mla};
  EXPECT_EQ(c.mixer, want);
  EXPECT_EQ(c.ffn[0], FfnKind::Dense);
  EXPECT_EQ(c.ffn[3], FfnKind::Moe);
}

}  // namespace
}  // namespace kl::test
