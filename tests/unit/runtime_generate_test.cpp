// Generation loop pieces: stop strings across token boundaries, and text generation through
// the real binary on the built-in model.
#include <gtest/gtest.h>

#include "cli_util.h"
#include "runtime/generate.h"

namespace kl {
namespace {

std::string run(StopStringFilter& f, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += f.push(p);
  return out + f.flush();
}

TEST(StopStrings, MatchedAcrossPiecesAndNotEmitted) {
  StopStringFilter f({"</end>"});
  EXPECT_EQ(run(f, {"Hello </", "e", "nd> tail"}), "Hello ");
  EXPECT_TRUE(f.stopped());
}

TEST(StopStrings, HeldBackPrefixIsReleasedWhenItDoesNotMatch) {
  StopStringFilter f({"STOP"});
  EXPECT_EQ(f.push("abc ST"), "abc ");  // "ST" could start STOP: held
  EXPECT_EQ(f.push("ART"), "START");
  EXPECT_FALSE(f.stopped());
  EXPECT_EQ(f.push("xS"), "x");
  EXPECT_EQ(f.flush(), "S");  // the end of the stream releases what was held
}

TEST(StopStrings, EarliestOfSeveral) {
  StopStringFilter f({"bb", "a"});
  EXPECT_EQ(run(f, {"xxbbya"}), "xx");
  StopStringFilter g({});
  EXPECT_EQ(run(g, {"no ", "stops"}), "no stops");
}

TEST(GenerateCli, TextPromptIsReproducibleWithASeedAndStopsOnStopString) {
  using test::run_cli;
  auto a = run_cli("generate --prompt \"The weather today\" -n 12 --temperature 0.9 --seed 11 -t 1");
  auto b = run_cli("generate --prompt \"The weather today\" -n 12 --temperature 0.9 --seed 11 -t 2");
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.err.find("12 generated"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("stop: max_tokens"), std::string::npos) << a.err;
  // Stop at a string taken from the middle of that output: it and what follows are not printed.
  std::string text = a.out.substr(0, a.out.size() - 1);  // drop the final newline
  ASSERT_GE(text.size(), 6u);
  // Pick 3 bytes that start a UTF-8 character.
  size_t at = text.size() / 2;
  while (at > 0 && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) at--;
  std::string stop = text.substr(at, 3);
  while (!stop.empty() && (static_cast<unsigned char>(stop.back()) & 0x80)) stop.pop_back();
  if (stop.empty()) GTEST_SKIP() << "no ASCII stop string in the middle of the output";
  auto c = run_cli("generate --prompt \"The weather today\" -n 12 --temperature 0.9 --seed 11 --stop '" + stop + "'");
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(c.out, text.substr(0, text.find(stop)) + "\n");
  EXPECT_NE(c.err.find("stop: stop_string"), std::string::npos) << c.err;
}

TEST(GenerateCli, ChatModeAndErrors) {
  using test::run_cli;
  auto a = run_cli("generate --prompt hi --chat -n 4 --seed 1");
  ASSERT_EQ(a.rc, 0) << a.err;
  // "<|im_user|>user<|im_middle|>hi<|im_end|><|im_assistant|>assistant<|im_middle|>" = 8 tokens.
  EXPECT_NE(a.err.find("[8 prompt tokens"), std::string::npos) << a.err;
  auto b = run_cli("generate --prompt hi --prompt-ids 1");
  EXPECT_NE(b.rc, 0);
  auto c = run_cli("generate --prompt hi --temperature -1");
  EXPECT_NE(c.rc, 0);
  EXPECT_NE(c.err.find("temperature"), std::string::npos) << c.err;
  auto d = run_cli("generate --prompt hi --logit-bias 5=abc");
  EXPECT_NE(d.rc, 0);
  EXPECT_NE(d.err.find("--logit-bias"), std::string::npos) << d.err;
  auto e = run_cli("generate --prompt hi --model " + std::string(KL_TEST_DATA) + "/tiny-a");
  EXPECT_NE(e.rc, 0);
  EXPECT_NE(e.err.find("tiktoken.model"), std::string::npos) << e.err;
}

}  // namespace
}  // namespace kl
