// config.json parsing and checking, and the loader's checks of tensors against the config.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "format/safetensors.h"
#include "model/config.h"
#include "model/model.h"
#include "runtime/inspect.h"

namespace kl {
namespace {

using nlohmann::json;
const std::string kTinyA = std::string(KL_TEST_DATA) + "/tiny-a";
const std::string k48b = std::string(KL_TEST_DATA) + "/kimi-linear-48b";

json read_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f);
}

// Expects parse_config to fail with a message containing every fragment.
void expect_config_error(const json& j, std::vector<std::string> fragments) {
  try {
    parse_config(j.dump(), "/some/dir/config.json");
    FAIL() << "accepted: " << j.dump().substr(0, 200);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("/some/dir/config.json"), std::string::npos) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

TEST(Config, TinyAFixture) {
  KimiConfig c = load_config(kTinyA);
  EXPECT_EQ(c.num_hidden_layers, 6);
  std::vector<MixerKind> want = {MixerKind::Kda, MixerKind::Kda, MixerKind::Kda,
                                 MixerKind::Mla, MixerKind::Kda, MixerKind::Mla};
  EXPECT_EQ(c.mixer, want);
  EXPECT_EQ(c.ffn[0], FfnKind::Dense);
  for (int l = 1; l < 6; l++) EXPECT_EQ(c.ffn[size_t(l)], FfnKind::Moe);
}

// spec §1-§2: the released 48B config: 49,122,681,728 parameters, 7 MLA layers x 576 values.
TEST(Config, Real48BInspectReport) {
  json r = inspect_model(k48b);
  EXPECT_EQ(r["parameters"]["total"].get<int64_t>(), 49122681728);
  EXPECT_EQ(r["parameters"]["tensors"].get<int64_t>(), 20493);
  EXPECT_EQ(r["mla_layers"].get<int64_t>(), 7);
  EXPECT_EQ(r["kda_layers"].get<int64_t>(), 20);
  EXPECT_EQ(r["mla_cache_per_token"]["values_per_layer"].get<int64_t>(), 576);
  EXPECT_EQ(r["mla_cache_per_token"]["values"].get<int64_t>(), 4032);
  EXPECT_EQ(r["all_mla_cache_per_token"]["values"].get<int64_t>(), 27 * 576);
  EXPECT_EQ(r["state_per_sequence"]["kda_recurrent_values"].get<int64_t>(), 10485760);
  EXPECT_FALSE(r["weights"]["present"].get<bool>());
  // MLA layers at 0-based 3,7,11,15,19,23,26 (spec §1 layer map).
  std::vector<int64_t> mla;
  for (auto& l : r["layers"])
    if (l["mixer"] == "MLA") mla.push_back(l["layer"]);
  EXPECT_EQ(mla, (std::vector<int64_t>{3, 7, 11, 15, 19, 23, 26}));
}

TEST(Config, EveryRequiredKeyMissing) {
  const json base = read_json(k48b + "/config.json");
  for (const char* key : {"vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "rms_norm_eps",
                          "hidden_act", "linear_attn_config", "num_attention_heads", "num_key_value_heads",
                          "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
                          "mla_use_nope", "num_experts", "num_experts_per_token", "num_shared_experts",
                          "moe_intermediate_size", "first_k_dense_replace", "moe_layer_freq",
                          "moe_router_activation_func", "moe_renormalize", "routed_scaling_factor",
                          "use_grouped_topk", "num_expert_group", "topk_group", "num_nextn_predict_layers",
                          "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "model_type"}) {
    json j = base;
    j.erase(key);
    expect_config_error(j, {std::string("'") + key + "'"});
  }
  for (const char* key : {"kda_layers", "full_attn_layers", "num_heads", "head_dim", "short_conv_kernel_size"}) {
    json j = base;
    j["linear_attn_config"].erase(key);
    expect_config_error(j, {std::string("linear_attn_config.") + key});
  }
}

TEST(Config, IllTypedKeys) {
  const json base = read_json(k48b + "/config.json");
  json j = base;
  j["hidden_size"] = "2304";
  expect_config_error(j, {"'hidden_size'", "integer"});
  j = base;
  j["rms_norm_eps"] = "small";
  expect_config_error(j, {"'rms_norm_eps'", "number"});
  j = base;
  j["moe_renormalize"] = 1;
  expect_config_error(j, {"'moe_renormalize'"});
  j = base;
  j["linear_attn_config"]["kda_layers"] = {1, "2"};
  expect_config_error(j, {"kda_layers", "list of integers"});
  j = base;
  j["num_experts"] = -4;
  expect_config_error(j, {"'num_experts'"});
  j = base;
  j["rope_theta"] = "big";  // informational keys are type-checked too
  expect_config_error(j, {"'rope_theta'"});
}

TEST(Config, InconsistentValues) {
  const json base = read_json(k48b + "/config.json");
  json j = base;
  j["linear_attn_config"]["full_attn_layers"] = {4, 8, 12, 16, 20, 24};  // layer 27 uncovered
  expect_config_error(j, {"layer 27", "neither"});
  j = base;
  j["linear_attn_config"]["kda_layers"].push_back(4);  // in both lists
  expect_config_error(j, {"layer 4", "both"});
  j = base;
  j["linear_attn_config"]["kda_layers"].push_back(28);
  expect_config_error(j, {"28", "outside"});
  j = base;
  j["num_key_value_heads"] = 8;
  expect_config_error(j, {"'num_key_value_heads'"});
  j = base;
  j["q_lora_rank"] = 1536;
  expect_config_error(j, {"'q_lora_rank'"});
  j = base;
  j["mla_use_nope"] = false;
  expect_config_error(j, {"'mla_use_nope'"});
  j = base;
  j["moe_router_activation_func"] = "softmax";
  expect_config_error(j, {"'moe_router_activation_func'", "softmax"});
  j = base;
  j["num_experts_per_token"] = 300;
  expect_config_error(j, {"'num_experts_per_token'"});
  j = base;
  j["model_type"] = "llama";
  expect_config_error(j, {"'model_type'", "llama"});
  expect_config_error(json::array(), {"object"});
  try {
    parse_config("{\"vocab_size\": ", "x/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos);
  }
}

// --- Loader checks of tensors against the config, on edited copies of tiny-a.

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kl_loader_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::filesystem::copy_file(kTinyA + "/config.json", dir_ / "config.json");
    src_ = std::make_unique<SafetensorsSet>(SafetensorsSet::open(kTinyA));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes model.safetensors from tiny-a with `edit` applied to the list of tensors.
  void write(const std::function<void(std::vector<StWriteTensor>&)>& edit) {
    std::vector<StWriteTensor> ts;
    for (const std::string& n : src_->names()) {
      const TensorView& v = src_->find(n)->view;
      ts.push_back({n, v.dtype, std::vector<int64_t>(v.shape.begin(), v.shape.begin() + v.ndim), v.data});
    }
    edit(ts);
    write_safetensors((dir_ / "model.safetensors").string(), ts);
  }
  std::string load_error() {
    try {
      Model::load(dir_.string(), {});
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::filesystem::path dir_;
  std::unique_ptr<SafetensorsSet> src_;
};

TEST_F(LoaderTest, MissingTensor) {
  write([](auto& ts) {
    std::erase_if(ts, [](auto& t) { return t.name == "model.layers.3.self_attn.kv_b_proj.weight"; });
  });
  std::string e = load_error();
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
  EXPECT_NE(e.find("model.layers.3.self_attn.kv_b_proj.weight"), std::string::npos) << e;
}

TEST_F(LoaderTest, WrongShape) {
  std::vector<float> data(128 * 100);
  write([&](auto& ts) {
    for (auto& t : ts)
      if (t.name == "model.layers.0.self_attn.q_proj.weight") {
        t.shape = {100, 128};
        t.data = data.data();
      }
  });
  std::string e = load_error();
  EXPECT_NE(e.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[100, 128]"), std::string::npos) << e;
  EXPECT_NE(e.find("[192, 128]"), std::string::npos) << e;
}

TEST_F(LoaderTest, UnsupportedFormat) {
  std::vector<int64_t> data(512 * 128);
  write([&](auto& ts) {
    for (auto& t : ts)
      if (t.name == "lm_head.weight") {
        t.dtype = DType::I64;
        t.data = data.data();
      }
  });
  std::string e = load_error();
  EXPECT_NE(e.find("lm_head.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("I64"), std::string::npos) << e;
}

TEST_F(LoaderTest, ExtraTensorsAreReportedNotFatal) {
  std::vector<float> extra(7, 1.f);
  write([&](auto& ts) { ts.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", DType::F32, {7}, extra.data()}); });
  auto m = Model::load(dir_.string(), {});
  ASSERT_EQ(m->extra_tensors().size(), 1u);
  EXPECT_EQ(m->extra_tensors()[0], "model.layers.0.self_attn.rotary_emb.inv_freq");
}

TEST_F(LoaderTest, Bf16AndF16WeightsLoad) {
  // Same model with every matrix converted: the loader accepts them, small params become fp32.
  std::vector<std::vector<uint16_t>> keep;
  write([&](auto& ts) {
    for (auto& t : ts) {
      int64_t n = 1;
      for (auto d : t.shape) n *= d;
      std::vector<uint16_t> h(static_cast<size_t>(n));
      const float* f = static_cast<const float*>(t.data);
      const bool bf = t.name.find("mlp") != std::string::npos;
      for (int64_t i = 0; i < n; i++) h[size_t(i)] = bf ? f32_to_bf16(f[i]) : f32_to_f16(f[i]);
      keep.push_back(std::move(h));
      t.dtype = bf ? DType::BF16 : DType::F16;
      t.data = keep.back().data();
    }
  });
  auto m = Model::load(dir_.string(), {});
  EXPECT_EQ(m->weights().lm_head.dtype, DType::F16);
  EXPECT_EQ(m->weights().layers[0].mlp.gate.dtype, DType::BF16);
}

TEST_F(LoaderTest, ConfigOnlyDirectoryIsAnErrorForLoadingButNotForInspect) {
  std::string e = load_error();
  EXPECT_FALSE(e.empty());
  json r = inspect_model(dir_.string());
  EXPECT_FALSE(r["weights"]["present"].get<bool>());
  EXPECT_EQ(r["parameters"]["total"].get<int64_t>(), 1452792);
}

}  // namespace
}  // namespace kl
