// The tokenizer against the goldens in tests/data/tokenizer/goldens (made with openai/tiktoken
// 0.14.0 and Kimi's tokenization_kimi.py; see tests/data/tokenizer/README.md) and against
// test vectors published by other projects (external_vectors/).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace kl {
namespace {

const std::string kData = std::string(KL_TEST_DATA) + "/tokenizer/";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (const unsigned char c : s) {
    h.push_back(d[c >> 4]);
    h.push_back(d[c & 15]);
  }
  return h;
}

// The vocabularies are loaded once for the whole binary (they take a few tens of ms each).
const Vocab& vocab(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Vocab>> cache;
  auto& v = cache[name];
  if (!v) {
    const std::string file = name == "kimi" ? "kimi/tiktoken.model" : name + "/" + name + ".tiktoken";
    v = std::make_unique<Vocab>(Vocab::load_tiktoken(kData + file));
  }
  return *v;
}

// The tokenizer a golden file's meta record describes (README §2).
std::unique_ptr<Tokenizer> tokenizer_for(const nlohmann::json& meta) {
  const std::string config = meta.at("config");
  TokenizerOptions opt;
  opt.pattern = meta.at("pattern");
  std::vector<std::pair<TokenId, std::string>> named;
  for (const auto& [id, name] : meta.at("special_tokens_named").items()) named.emplace_back(std::stoi(id), name);
  if (config == "kimi" || config == "kimi-regex_cl100k-vocab") {
    const Vocab& v = vocab(config == "kimi" ? "kimi" : "cl100k_base");
    EXPECT_EQ(opt.pattern, kKimiPattern);
    opt.kimi_chunking = true;
    const auto lo = meta.at("special_id_range")[0].get<TokenId>();
    EXPECT_EQ(lo, TokenId(v.size()));
    SpecialTokens specials = SpecialTokens::kimi_default(lo);
    // The built-in table must name exactly what the goldens name.
    for (const auto& [id, name] : named) EXPECT_EQ(*specials.name(id), name) << id;
    EXPECT_EQ(specials.size(), meta.at("n_special_tokens").get<size_t>());
    return std::make_unique<Tokenizer>(v, std::move(specials), opt);
  }
  EXPECT_EQ(config, "cl100k_base");
  EXPECT_EQ(opt.pattern, kCl100kPattern);
  opt.kimi_chunking = false;
  return std::make_unique<Tokenizer>(vocab("cl100k_base"), SpecialTokens(named), opt);
}

struct Counts {
  int encode = 0, decode = 0;
};

Counts check_golden_file(const std::string& name) {
  const auto records = read_jsonl(kData + "goldens/" + name);
  EXPECT_FALSE(records.empty());
  EXPECT_EQ(records[0].at("kind"), "meta");
  const auto tok = tokenizer_for(records[0]);
  Counts n;
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& rec = records[r];
    const std::string id = rec.at("id");
    if (rec.at("kind") == "decode") {
      const auto ids = rec.at("ids").get<std::vector<TokenId>>();
      EXPECT_EQ(hex(tok->decode_bytes(ids)), rec.at("bytes_hex").get<std::string>()) << name << " " << id;
      EXPECT_EQ(tok->decode(ids), rec.at("text").get<std::string>()) << name << " " << id;
      ++n.decode;
      continue;
    }
    EXPECT_EQ(rec.at("kind"), "encode") << id;
    const std::string text = rec.at("text");
    const auto ids = rec.at("ids").get<std::vector<TokenId>>();
    const auto ids_plain = rec.value("ids_plain_same_as_ids", false) ? ids : rec.at("ids_plain").get<std::vector<TokenId>>();
    EXPECT_EQ(tok->encode(text, true), ids) << name << " " << id;
    EXPECT_EQ(tok->encode(text, false), ids_plain) << name << " " << id;
    if (rec.contains("pieces_plain")) {
      EXPECT_EQ(tok->pieces(text), rec.at("pieces_plain").get<std::vector<std::string>>()) << name << " " << id;
    }
    const std::string decoded = rec.contains("decoded") ? rec.at("decoded").get<std::string>() : text;
    EXPECT_EQ(tok->decode(ids), decoded) << name << " " << id;
    EXPECT_EQ(tok->decode(ids_plain), text) << name << " " << id;
    ++n.encode;
  }
  return n;
}

TEST(TokenizerGolden, Kimi) {
  const Counts n = check_golden_file("kimi.jsonl");
  EXPECT_EQ(n.encode, 227);
  EXPECT_GE(n.decode, 21);
}
TEST(TokenizerGolden, KimiLong) { EXPECT_EQ(check_golden_file("kimi.long.jsonl").encode, 10); }
TEST(TokenizerGolden, Cl100k) {
  const Counts n = check_golden_file("cl100k_base.jsonl");
  EXPECT_EQ(n.encode, 227);
  EXPECT_GE(n.decode, 21);
}
TEST(TokenizerGolden, Cl100kLong) { EXPECT_EQ(check_golden_file("cl100k_base.long.jsonl").encode, 2); }
TEST(TokenizerGolden, KimiRegexCl100kVocab) {
  const Counts n = check_golden_file("kimi-regex_cl100k-vocab.jsonl");
  EXPECT_EQ(n.encode, 227);
  EXPECT_GE(n.decode, 21);
}
TEST(TokenizerGolden, KimiRegexCl100kVocabLong) {
  EXPECT_EQ(check_golden_file("kimi-regex_cl100k-vocab.long.jsonl").encode, 10);
}

// The lookahead form of the class intersections splits exactly like the complement form.
TEST(TokenizerGolden, LookaheadIntersectionsGiveSamePieces) {
  const auto records = read_jsonl(kData + "goldens/kimi.jsonl");
  TokenizerOptions opt;
  opt.intersections = IntersectionStyle::kLookahead;
  const Tokenizer tok(vocab("kimi"), SpecialTokens::kimi_default(163584), opt);
  EXPECT_NE(tok.pretokenizer().pcre2_pattern().find("(?!"), std::string::npos);
  int n = 0;
  for (const auto& rec : records) {
    if (rec.at("kind") != "encode") continue;
    EXPECT_EQ(tok.pieces(rec.at("text").get<std::string>()), rec.at("pieces_plain").get<std::vector<std::string>>())
        << rec.at("id");
    ++n;
  }
  EXPECT_EQ(n, 227);
}

// Without the Kimi chunking the three cases the goldens flag come out differently: the test
// above really exercises the slicing and the 25k-run splitter.
TEST(TokenizerGolden, KimiChunkingMatters) {
  const auto records = read_jsonl(kData + "goldens/kimi.long.jsonl");
  TokenizerOptions opt;
  opt.kimi_chunking = false;
  const Tokenizer plain(vocab("kimi"), SpecialTokens::kimi_default(163584), opt);
  int differ = 0;
  for (const auto& rec : records) {
    if (rec.at("kind") != "encode") continue;
    if (plain.encode(rec.at("text").get<std::string>(), true) != rec.at("ids").get<std::vector<TokenId>>()) ++differ;
  }
  EXPECT_EQ(differ, 3);  // run_space_25005, run_mixed_ws_boundary, slice_400k_words
}

std::vector<TokenId> parse_ids(std::string_view s) {
  std::vector<TokenId> ids;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ',' || s[i] == ' ' || s[i] == '\n' || s[i] == '\r')) ++i;
    if (i >= s.size()) break;
    size_t j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    EXPECT_GT(j, i) << "bad id list near '" << s.substr(i, 20) << "'";
    if (j == i) break;
    ids.push_back(std::stoi(std::string(s.substr(i, j - i))));
    i = j;
  }
  return ids;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t i = 0;
  for (size_t p = s.find(from); p != std::string_view::npos; p = s.find(from, i)) {
    out.append(s.substr(i, p - i)).append(to);
    i = p + from.size();
  }
  return out.append(s.substr(i));
}

// kitoken's line format (external_vectors/PROVENANCE.md): lines split on \n (one trailing \r
// dropped, empty lines skipped), then the escapes \n, \s and \x inside each line.
std::vector<std::string> kitoken_lines(const std::string& path, bool unescape) {
  std::vector<std::string> out;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (unescape) line = replace_all(replace_all(replace_all(line, "\\n", "\n"), "\\s", " "), "\\x", "");
    out.push_back(line);
  }
  return out;
}

std::unique_ptr<Tokenizer> kitoken_tokenizer(const std::string& vocab_name) {
  TokenizerOptions opt;
  if (vocab_name == "kimi_k2") return std::make_unique<Tokenizer>(vocab("kimi"), SpecialTokens::kimi_default(163584), opt);
  opt.kimi_chunking = false;
  if (vocab_name == "cl100k_base") {
    opt.pattern = kCl100kPattern;
    return std::make_unique<Tokenizer>(
        vocab("cl100k_base"),
        SpecialTokens({{100257, "<|endoftext|>"}, {100258, "<|fim_prefix|>"}, {100259, "<|fim_middle|>"},
                       {100260, "<|fim_suffix|>"}, {100276, "<|endofprompt|>"}}),
        opt);
  }
  opt.pattern = kO200kPattern;
  return std::make_unique<Tokenizer>(vocab("o200k_base"),
                                     SpecialTokens({{199999, "<|endoftext|>"}, {200018, "<|endofprompt|>"}}), opt);
}

class Kitoken : public testing::TestWithParam<std::string> {};

TEST_P(Kitoken, SmallMixedAndUtf8) {
  const std::string v = GetParam();
  const auto tok = kitoken_tokenizer(v);
  const bool allow_special = v != "kimi_k2";  // kitoken's Kimi vectors are plain mode
  const std::string dir = kData + "external_vectors/kitoken/";
  for (const std::string set : {"small", "mixed"}) {
    const auto inputs = kitoken_lines(dir + set + "_input.txt", true);
    const auto expected = kitoken_lines(dir + set + "_tokens_" + v + ".txt", false);
    ASSERT_EQ(inputs.size(), expected.size()) << set;
    for (size_t i = 0; i < inputs.size(); ++i)
      EXPECT_EQ(tok->encode(inputs[i], allow_special), parse_ids(expected[i])) << v << " " << set << " line " << i + 1;
  }
  const std::string text = read_file(dir + "utf8_input.txt");
  const auto ids = tok->encode(text, allow_special);
  EXPECT_EQ(ids, parse_ids(read_file(dir + "utf8_tokens_" + v + ".txt"))) << v << " utf8";
  EXPECT_EQ(tok->decode(ids), text);
}

INSTANTIATE_TEST_SUITE_P(Vocabs, Kitoken, testing::Values("cl100k_base", "o200k_base", "kimi_k2"));

TEST(TokenizerExternal, OpenAiPublishedCl100k) {
  const auto doc = nlohmann::json::parse(read_file(kData + "external_vectors/openai_tiktoken_published.json"));
  const auto tok = kitoken_tokenizer("cl100k_base");
  int n = 0;
  for (const auto& v : doc.at("vectors")) {
    if (v.at("encoding") != "cl100k_base") continue;
    EXPECT_EQ(tok->encode(v.at("text").get<std::string>(), v.at("allowed_special") == "all"),
              v.at("ids").get<std::vector<TokenId>>())
        << v.at("text");
    ++n;
  }
  EXPECT_GT(n, 5);
  EXPECT_EQ(tok->decode(std::vector<TokenId>{15339, 1917}), "hello world");
}

TEST(TokenizerExternal, MlxcelKimiPretokenizePins) {
  const auto pins = nlohmann::json::parse(read_file(kData + "external_vectors/mlxcel_k3_pretokenize_pins.json"));
  const auto tok = kitoken_tokenizer("kimi_k2");
  ASSERT_EQ(pins.size(), 8u);
  for (const auto& pin : pins) {
    const std::string text = pin.at("text");
    EXPECT_EQ(tok->pieces(text), pin.at("pieces").get<std::vector<std::string>>()) << text;
    EXPECT_EQ(tok->encode(text, false), pin.at("ids").get<std::vector<TokenId>>()) << text;
  }
}

TEST(TokenizerExternal, MlxcelKimiCorpusTail) {
  const auto lines = nlohmann::json::parse(read_file(kData + "external_vectors/mlxcel_k3_corpus_tail.json"));
  const auto tok = kitoken_tokenizer("kimi_k2");
  ASSERT_EQ(lines.size(), 24u);
  for (const auto& l : lines)
    EXPECT_EQ(tok->encode(l.at("text").get<std::string>(), false), l.at("ids").get<std::vector<TokenId>>()) << l.at("text");
}

}  // namespace
}  // namespace kl
