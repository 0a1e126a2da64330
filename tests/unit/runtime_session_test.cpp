// Sessions: chunked feeding, saving and loading the whole state.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model_test_util.h"
#include "runtime/engine.h"

namespace kl::test {
namespace {

std::unique_ptr<kl::Engine> tiny_engine(int64_t chunk = 512) {
  ModelSource src;
  src.dir = tiny_a();
  EngineOptions eo;
  eo.threads = 2;
  eo.prefill_chunk = chunk;
  return std::make_unique<kl::Engine>(src, eo);
}

// Weights read into memory (--no-mmap) compute exactly what mapped weights compute.
TEST(Session, WeightsReadIntoMemoryGiveTheSameLogits) {
  ModelSource src;
  src.dir = tiny_a();
  src.options.weights_access = FileAccess::Read;
  EngineOptions eo;
  eo.threads = 2;
  kl::Engine read(src, eo);
  auto mapped = tiny_engine();
  Session a(*mapped), b(read);
  const auto tokens = load_tokens("tokens_200.npy");
  EXPECT_EQ(a.feed_all_logits(tokens), b.feed_all_logits(tokens));
}

std::string tmp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("kl_sess_" + std::to_string(::getpid()) + "_" + name)).string();
}

TEST(Session, SmallChunksGiveTheSameLogits) {
  auto e1 = tiny_engine(512), e2 = tiny_engine(7);
  Session a(*e1), b(*e2);
  const auto tokens = load_tokens("tokens_200.npy");
  std::vector<float> la = a.feed_all_logits(tokens);
  std::vector<float> lb = b.feed_all_logits(tokens);
  EXPECT_LE(max_abs_diff(la.data(), lb.data(), la.size()), 1e-5f * max_abs(la.data(), la.size()));
  EXPECT_EQ(b.tokens(), tokens);
}

// After /load, the next turn's logits are identical to those of the session that saved it.
TEST(Session, SaveLoadGivesIdenticalNextLogits) {
  auto e = tiny_engine();
  const auto tokens = load_tokens("tokens_200.npy");
  Session a(*e);
  a.feed(std::vector<int32_t>(tokens.begin(), tokens.begin() + 150));
  const std::string f = tmp_file("a.klstate");
  a.save(f);
  const std::vector<int32_t> turn(tokens.begin() + 150, tokens.end());
  std::vector<float> want = a.feed_all_logits(turn);

  Session b(*e);
  b.feed({1, 2, 3});  // whatever was there is replaced
  b.load(f);
  EXPECT_EQ(b.n_tokens(), 150);
  EXPECT_EQ(b.tokens(), std::vector<int32_t>(tokens.begin(), tokens.begin() + 150));
  std::vector<float> got = b.feed_all_logits(turn);
  EXPECT_EQ(got, want);  // bit-identical
  std::filesystem::remove(f);
}

TEST(Session, PromptLongerThanTheContextIsAnError) {
  auto e = tiny_engine();
  Session a(*e);
  a.feed(std::vector<int32_t>(4000, 3));
  try {
    a.feed(std::vector<int32_t>(97, 3));  // model_max_length is 4096
    FAIL() << "accepted a context of 4097 tokens";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("4097"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("4096"), std::string::npos) << err.what();
  }
  EXPECT_EQ(a.n_tokens(), 4000);  // nothing was lost
  a.feed({1});
  EXPECT_EQ(a.n_tokens(), 4001);
}

TEST(Session, BadIdInALateChunkLeavesTheSessionUntouched) {
  auto e = tiny_engine(8);  // 8-token chunks: the bad id sits in the third chunk
  Session a(*e);
  a.feed({1, 2, 3});
  std::vector<int32_t> t(20, 5);
  t[17] = 512;  // vocab is 512
  try {
    a.feed(t);
    FAIL() << "accepted id 512";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("position 17"), std::string::npos) << err.what();
  }
  EXPECT_EQ(a.n_tokens(), 3);
  EXPECT_EQ(a.tokens(), (std::vector<int32_t>{1, 2, 3}));
}

TEST(Session, DamagedOrForeignFilesAreRefused) {
  auto e = tiny_engine();
  Session a(*e);
  a.feed({5, 6, 7, 8});
  const std::string f = tmp_file("b.klstate");
  a.save(f);
  auto expect_refused = [&](Session& s, const std::string& path, const char* what) {
    try {
      s.load(path);
      ADD_FAILURE() << "loaded " << path;
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(what), std::string::npos) << err.what();
    }
  };
  // One flipped byte in the payload.
  {
    std::string bytes;
    {
      std::ifstream in(f, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::string g = tmp_file("c.klstate");
    bytes[bytes.size() / 2] ^= 0x10;
    std::ofstream(g, std::ios::binary) << bytes;
    Session s(*e);
    expect_refused(s, g, "checksum");
    // Truncated.
    std::ofstream(g, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 100);
    expect_refused(s, g, "checksum");
    std::ofstream(g, std::ios::binary | std::ios::trunc) << "hello";
    expect_refused(s, g, "not a kimi-linear session file");
    std::filesystem::remove(g);
  }
  // Another model: the built-in one.
  ModelSource builtin;
  EngineOptions eo;
  eo.threads = 1;
  kl::Engine other(builtin, eo);
  Session s(other);
  expect_refused(s, f, "another model");
  expect_refused(s, "/nonexistent/x.klstate", "cannot open");
  std::filesystem::remove(f);
}

}  // namespace
}  // namespace kl::test
