// End to end: the real kimi-linear binary's tokenize / detokenize commands.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tokenizer/chat_template.h"

namespace kl {
namespace {

namespace fs = std::filesystem;
const std::string kData = std::string(KL_TEST_DATA) + "/tokenizer/";

struct Result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A single-quoted shell word.
std::string quote(const std::string& s) {
  std::string q(1, '\'');
  for (const char c : s) {
    if (c == '\'')
      q.append("'\\''");
    else
      q.push_back(c);
  }
  q.push_back('\'');
  return q;
}

std::string ids_json(const std::vector<TokenId>& ids) { return nlohmann::json{{"ids", ids}}.dump() + "\n"; }

class CliTokenize : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kl_cli_tok_" + std::to_string(::getpid()) + "_" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tok");
    fs::copy_file(kData + "kimi/tiktoken.model", dir_ / "tok" / "tiktoken.model");
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result run(const std::vector<std::string>& args) const {
    std::string cmd = quote(KL_BINARY);
    for (const auto& a : args) cmd.append(" ").append(quote(a));
    cmd.append(" >").append(quote((dir_ / "out.txt").string()));
    cmd.append(" 2>").append(quote((dir_ / "err.txt").string()));
    Result r;
    const int status = std::system(cmd.c_str());
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(dir_ / "out.txt");
    r.err = slurp(dir_ / "err.txt");
    return r;
  }
  std::string tok_dir() const { return (dir_ / "tok").string(); }
  std::string write(const std::string& name, const std::string& content) const {
    const auto p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }

  fs::path dir_;
};

TEST_F(CliTokenize, EncodesText) {
  Result r = run({"tokenize", "--tokenizer", tok_dir(), "--text", "Hello world"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "19180,2695\n");
  r = run({"tokenize", "--model", tok_dir(), "--text", "Hello world", "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"ids\":[19180,2695]}\n");
  r = run({"tokenize", "--tokenizer", tok_dir(), "--file", write("in.txt", "Hello world")});
  EXPECT_EQ(r.out, "19180,2695\n");
}

TEST_F(CliTokenize, SpecialsOnlyWithFlag) {
  Result r = run({"tokenize", "--tokenizer", tok_dir(), "--text", "<|im_end|>"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("163586"), std::string::npos) << r.out;
  r = run({"tokenize", "--tokenizer", tok_dir(), "--text", "<|im_end|>", "--special"});
  EXPECT_EQ(r.out, "163586\n");
}

TEST_F(CliTokenize, Chat) {
  const std::string chat = R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]})";
  const std::string path = write("chat.json", chat);
  Result r = run({"tokenize", "--tokenizer", tok_dir(), "--chat", path, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Tokenizer tok = Tokenizer::load(tok_dir());
  const auto expected = render_chat_request(tok, nlohmann::ordered_json::parse(chat)).ids;
  EXPECT_EQ(r.out, ids_json(expected));
  EXPECT_EQ(r.out.rfind("{\"ids\":[163594,", 0), 0u) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
  // A bare messages array works too; a chat_template.jinja in the directory gets a note.
  write("tok/chat_template.jinja", "{{ messages }}");
  r = run({"tokenize", "--tokenizer", tok_dir(), "--chat",
           write("bare.json", R"([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])"), "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, ids_json(expected));
  EXPECT_NE(r.err.find("native"), std::string::npos) << r.err;
  r = run({"tokenize", "--tokenizer", tok_dir(), "--chat", write("bad.json", "{oops")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("invalid JSON"), std::string::npos) << r.err;
}

TEST_F(CliTokenize, Detokenize) {
  Result r = run({"detokenize", "--tokenizer", tok_dir(), "--ids", "19180,2695,163586"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello world<|im_end|>\n");
  r = run({"detokenize", "--tokenizer", tok_dir(), "--ids", "19180,abc"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("'abc' is not a token id"), std::string::npos) << r.err;
  r = run({"detokenize", "--tokenizer", tok_dir(), "--ids", "999999"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("token id 999999"), std::string::npos) << r.err;
}

TEST_F(CliTokenize, BuiltInTokenizerByDefault) {
  Result r = run({"tokenize", "--text", "Hello world"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "19180,2695\n");
  r = run({"detokenize", "--ids", "19180,2695"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello world\n");
}

TEST_F(CliTokenize, Errors) {
  Result r = run({"tokenize", "--tokenizer", (dir_ / "nowhere").string(), "--text", "hi"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nowhere"), std::string::npos) << r.err;
  r = run({"tokenize", "--tokenizer", tok_dir()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("one of --text, --file or --chat"), std::string::npos) << r.err;
  r = run({"tokenize", "--tokenizer", tok_dir(), "--model", tok_dir(), "--text", "hi"});
  EXPECT_NE(r.code, 0);
}

}  // namespace
}  // namespace kl
