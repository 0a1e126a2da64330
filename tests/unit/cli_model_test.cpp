// End to end through the real binary: inspect, generate and logits on the tiny-a fixture and
// the built-in model, and the errors a user can cause.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "model_test_util.h"

namespace kl::test {
namespace {

std::string ids_arg(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); i++) {  // appended piecewise: GCC 12 warns (-Wrestrict) on "," + string
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s;
}

TEST(Cli, GenerateReproducesReferenceGreedyIds) {
  for (std::string name : {"p7", "p65"}) {
    auto prompt = load_tokens("greedy_" + name + "_prompt.npy");
    auto want = load_tokens("greedy_" + name + "_ids.npy");
    CmdResult r = run_cli("generate --model " + tiny_a() + " --router-weights biased --ignore-eos -n 32 --prompt-ids " +
                          ids_arg(prompt));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, ids_arg(want) + "\n") << name;
  }
}

// --no-mmap reads the weights into memory and generates the same ids, and says so.
TEST(Cli, GenerateWithWeightsReadIntoMemory) {
  auto prompt = load_tokens("greedy_p7_prompt.npy");
  auto want = load_tokens("greedy_p7_ids.npy");
  CmdResult r = run_cli("generate --model " + tiny_a() + " --no-mmap --router-weights biased --ignore-eos -n 8 --prompt-ids " +
                        ids_arg(prompt));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, ids_arg(std::vector<int32_t>(want.begin(), want.begin() + 8)) + "\n");
  EXPECT_NE(r.err.find("weights read into memory"), std::string::npos) << r.err;
}

TEST(Cli, GenerateJson) {
  auto prompt = load_tokens("greedy_p7_prompt.npy");
  auto want = load_tokens("greedy_p7_ids.npy");
  CmdResult r = run_cli("generate --model " + tiny_a() + " --router-weights biased --ignore-eos -n 5 --json -t 1 --prompt-ids " +
                        ids_arg(prompt));
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["generated_ids"].get<std::vector<int32_t>>(), std::vector<int32_t>(want.begin(), want.begin() + 5));
  EXPECT_GT(j["prompt_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["generation_tokens_per_s"].get<double>(), 0);
}

TEST(Cli, LogitsFileMatchesGolden) {
  auto tokens = load_tokens("tokens_65.npy");
  const std::string out = (std::filesystem::temp_directory_path() / "kl_cli_logits.npy").string();
  // A small prefill chunk makes the CLI split the prompt; the result must not change.
  CmdResult r = run_cli("logits --model " + tiny_a() + " --prefill-chunk 16 --out " + out + " --prompt-ids " + ids_arg(tokens));
  ASSERT_EQ(r.rc, 0) << r.err;
  NpyArray got = read_npy(out);
  ASSERT_EQ(got.shape, (std::vector<int64_t>{65, 512}));
  std::vector<float> g = got.as_f32();
  std::vector<float> w = read_npy(golden("variant_unbiased_gate/logits_65.npy")).as_f32();  // default: unbiased
  EXPECT_LE(max_abs_diff(g.data(), w.data(), w.size()), 1e-4f * max_abs(w.data(), w.size()));
  std::filesystem::remove(out);
}

// --cache-type bf16 runs (the reference ids are kept on this prompt: no near-ties) and says so.
TEST(Cli, GenerateWithBf16Cache) {
  auto prompt = load_tokens("greedy_p65_prompt.npy");
  auto want = load_tokens("greedy_p65_ids.npy");
  CmdResult r = run_cli("generate --model " + tiny_a() +
                        " --router-weights biased --cache-type bf16 --ignore-eos -n 8 --prompt-ids " + ids_arg(prompt));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, ids_arg(std::vector<int32_t>(want.begin(), want.begin() + 8)) + "\n");
  EXPECT_NE(r.err.find("bf16 latent cache"), std::string::npos) << r.err;
}

// bench --json: one object per test with the keys; the attention work counted in the pp
// cost grows with the depth (the speeds themselves are not checked: timing decides no test).
TEST(Cli, BenchJson) {
  for (std::string cache : {"f32", "bf16"}) {
    CmdResult r = run_cli("bench --model " + tiny_a() + " -p 8 -n 4 -d 0,40 -r 2 -t 1 --no-limits --json --cache-type " + cache);
    ASSERT_EQ(r.rc, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j.size(), 4u);
    const std::vector<std::pair<std::string, int64_t>> want = {{"pp8", 0}, {"tg4", 0}, {"pp8", 40}, {"tg4", 40}};
    for (size_t i = 0; i < 4; i++) {
      EXPECT_EQ(j[i]["test"], want[i].first);
      EXPECT_EQ(j[i]["depth"].get<int64_t>(), want[i].second);
      EXPECT_GT(j[i]["tokens_per_s"].get<double>(), 0);
      EXPECT_TRUE(j[i].contains("fraction_of_limit"));
      EXPECT_GT(j[i]["peak_rss_bytes"].get<int64_t>(), 0);
      EXPECT_EQ(j[i]["cache_type"], cache);
      // Every repetition's speed, the best of them reported, and the paired ratio to depth 0.
      ASSERT_EQ(j[i]["runs_tokens_per_s"].size(), 2u);
      const auto runs = j[i]["runs_tokens_per_s"].get<std::vector<double>>();
      EXPECT_EQ(j[i]["tokens_per_s"].get<double>(), std::max(runs[0], runs[1]));
      if (i < 2) {
        EXPECT_EQ(j[i]["vs_first_depth_paired"].get<double>(), 1.0);
      }
      const auto first = j[i % 2]["runs_tokens_per_s"].get<std::vector<double>>();
      EXPECT_DOUBLE_EQ(j[i]["vs_first_depth_paired"].get<double>(), (runs[0] / first[0] + runs[1] / first[1]) / 2);
      // tg with two depths: a run per repetition that interleaves the depths' steps, and its ratio.
      EXPECT_EQ(j[i].contains("vs_first_depth_interleaved"), i % 2 == 1);
      if (i % 2 == 1) {
        const auto mixed = j[i]["interleaved_tokens_per_s"].get<std::vector<double>>();
        const auto mixed0 = j[1]["interleaved_tokens_per_s"].get<std::vector<double>>();
        ASSERT_EQ(mixed.size(), 2u);
        EXPECT_GT(mixed[0], 0);
        EXPECT_GT(mixed[1], 0);
        EXPECT_DOUBLE_EQ(j[i]["vs_first_depth_interleaved"].get<double>(),
                         (mixed[0] / mixed0[0] + mixed[1] / mixed0[1]) / 2);
      }
    }
    EXPECT_GT(j[2]["attention_flops_per_token"].get<double>(), j[0]["attention_flops_per_token"].get<double>());
    EXPECT_GT(j[3]["bytes_per_token"].get<double>(), j[1]["bytes_per_token"].get<double>());  // the cache grows
  }
}

// The table: a header naming the limit column, then one row per test (llama-bench's layout).
TEST(Cli, BenchTable) {
  CmdResult r = run_cli("bench --model " + tiny_a() + " -p 8 -n 4 -d 0,40 -r 1 -t 1 --no-limits");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::vector<std::string> lines;
  for (size_t a = 0, b; a < r.out.size(); a = b + 1) {
    b = r.out.find('\n', a);
    if (b == std::string::npos) b = r.out.size();
    lines.push_back(r.out.substr(a, b - a));
  }
  ASSERT_EQ(lines.size(), 6u) << r.out;
  for (const char* col : {"threads", "test", "depth", "t/s", "% of limit", "limit", "vs d0", "peak RSS"})
    EXPECT_NE(lines[0].find(col), std::string::npos) << col;
  const char* tests[] = {"pp8", "tg4", "pp8", "tg4"};
  for (int i = 0; i < 4; i++) {
    EXPECT_NE(lines[2 + i].find(tests[i]), std::string::npos) << lines[2 + i];
    EXPECT_NE(lines[2 + i].find(i < 2 ? " 0 |" : " 40 |"), std::string::npos) << lines[2 + i];
    EXPECT_NE(lines[2 + i].find(" - |"), std::string::npos) << lines[2 + i];  // --no-limits: none
  }
}

TEST(Cli, BuiltinModelRunsAndSaysItIsRandom) {
  CmdResult r = run_cli("generate --prompt-ids 1,2,3 -n 4");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("RANDOM weights"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--model"), std::string::npos);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), ','), 3) << r.out;
  // Seeded: the same ids every time, whatever the thread count.
  CmdResult r2 = run_cli("generate --prompt-ids 1,2,3 -n 4 -t 1");
  EXPECT_EQ(r.out, r2.out);
}

TEST(Cli, InspectJson48B) {
  CmdResult r = run_cli("inspect --json --model " + std::string(KL_TEST_DATA) + "/kimi-linear-48b");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parameters"]["total"].get<int64_t>(), 49122681728);
  EXPECT_EQ(j["mla_layers"].get<int>(), 7);
  EXPECT_EQ(j["mla_cache_per_token"]["values_per_layer"].get<int>(), 576);
  // 7 layers x 576 values: 16,128 bytes per token in fp32, 8,064 in bf16; x 1,048,576 tokens.
  EXPECT_EQ(j["mla_cache_per_token"]["bytes"].get<int64_t>(), 7 * 576 * 4);
  EXPECT_EQ(j["mla_cache_per_token"]["bytes_bf16"].get<int64_t>(), 7 * 576 * 2);
  EXPECT_EQ(j["mla_cache_per_token"]["bytes_bf16_at_max_context"].get<int64_t>(),
            7 * 576 * 2 * j["max_context"].get<int64_t>());
  CmdResult t = run_cli("inspect --model " + std::string(KL_TEST_DATA) + "/kimi-linear-48b");
  EXPECT_NE(t.out.find("49,122,681,728"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("7 MLA layers x 576"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("absent"), std::string::npos) << t.out;
}

TEST(Cli, UserErrorsExitNonZeroWithAMessage) {
  struct Case {
    std::string args, expect;
  };
  const std::string m = "--model " + tiny_a() + " ";
  for (const Case& c : std::vector<Case>{
           {"generate " + m + "--prompt-ids 1,x,3", "'x' is not a token id"},
           {"generate " + m + "--prompt-ids 1,,3", "empty token id"},
           {"generate " + m + "--prompt-ids 1,9999", "outside the vocabulary"},
           {"generate --model /nonexistent/dir --prompt-ids 1", "/nonexistent/dir/config.json"},
           {"generate " + m + "--prompt-ids 1 --router-weights maybe", "router-weights"},
           {"generate " + m + "--prompt-ids 1 --cache-type f16", "cache-type"},
           {"logits " + m + "--prompt-ids 1", "--out"},
           {"inspect --model /nonexistent", "cannot open"},
           {"frobnicate", "frobnicate"},
       }) {
    CmdResult r = run_cli(c.args);
    EXPECT_NE(r.rc, 0) << c.args;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  }
}

TEST(Cli, HelpForEveryCommand) {
  for (std::string cmd : {"", "inspect ", "generate ", "logits "}) {
    CmdResult r = run_cli(cmd + "--help");
    EXPECT_EQ(r.rc, 0) << cmd;
    EXPECT_NE(r.out.find("--"), std::string::npos) << cmd;
  }
}

}  // namespace
}  // namespace kl::test
