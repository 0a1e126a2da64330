// Tokenizer pieces in isolation: UTF-8 handling, vocabulary loading and its errors, the two BPE
// merge loops, pattern translation, special tokens, the streaming decoder, and speed on
// pathological input.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace kl {
namespace {

namespace fs = std::filesystem;
const std::string kData = std::string(KL_TEST_DATA) + "/tokenizer/";

std::string unhex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(char(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

const Tokenizer& kimi() {
  static const Tokenizer tok = Tokenizer::load(kData + "kimi");
  return tok;
}

// A scratch directory removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("kl_tok_" + std::to_string(::getpid()) + "_" +
            testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& content) const {
    const std::string p = (path / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
};

std::string expect_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a kl::Error";
  return {};
}

// ---------------------------------------------------------------------------------- UTF-8

TEST(TokenizerUtf8, LossyDecodeMatchesPython) {
  // Expected outputs from Python's bytes.fromhex(x).decode("utf-8", "replace").
  const std::pair<const char*, const char*> cases[] = {
      {"f09f", "efbfbd"},
      {"eda080", "efbfbdefbfbdefbfbd"},
      {"c0af", "efbfbdefbfbd"},
      {"e4b8616263", "efbfbd616263"},
      {"ff61fe", "efbfbd61efbfbd"},
      {"f4908080", "efbfbdefbfbdefbfbdefbfbd"},
      {"e080", "efbfbdefbfbd"},
      {"f08080", "efbfbdefbfbdefbfbd"},
      {"e180", "efbfbd"},
      {"80", "efbfbd"},
      {"c2", "efbfbd"},
      {"f09f98", "efbfbd"},
      {"61f09f9862", "61efbfbd62"},
      {"efbfbd", "efbfbd"},
      {"f7bfbfbf", "efbfbdefbfbdefbfbdefbfbd"},
      {"edbfbf", "efbfbdefbfbdefbfbd"},
      {"ee8080", "ee8080"},
      {"f48fbfbf", "f48fbfbf"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(utf8::decode_lossy(unhex(in)), unhex(out)) << in;
}

TEST(TokenizerUtf8, ValidationAndIncompleteTail) {
  EXPECT_TRUE(utf8::is_valid("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_EQ(utf8::find_invalid("ab\xED\xA0\x80"), 2u);  // surrogate
  EXPECT_EQ(utf8::find_invalid("ab\xC0\xAF"), 2u);      // overlong
  EXPECT_EQ(utf8::find_invalid("ab\xF0\x9F"), 2u);      // truncated
  EXPECT_EQ(utf8::incomplete_tail("a\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8::incomplete_tail("a\xF0\x9F"), 2u);
  EXPECT_EQ(utf8::incomplete_tail("a\xE4"), 1u);
  EXPECT_EQ(utf8::incomplete_tail("a\xF0\x9F\x98\x80"), 0u);  // complete
  EXPECT_EQ(utf8::incomplete_tail("a\xFF"), 0u);              // invalid, not incomplete
  EXPECT_EQ(utf8::incomplete_tail("a\xE0\x80"), 0u);          // E0 80 can never become valid
  EXPECT_EQ(utf8::incomplete_tail("\xE4\xF0\x9F"), 2u);
}

TEST(TokenizerUtf8, PythonIsspace) {
  for (const char32_t c : {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1F, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028,
                           0x2029, 0x202F, 0x205F, 0x3000})
    EXPECT_TRUE(utf8::python_isspace(c)) << std::hex << uint32_t(c);
  for (const char32_t c : {0x08, 0x1B, 0x21, 0x180E, 0x200B, 0xFEFF, 0x3001})
    EXPECT_FALSE(utf8::python_isspace(c)) << std::hex << uint32_t(c);
}

// ------------------------------------------------------------------------------ vocabulary

// A valid little vocabulary: the 256 single bytes, then "ab", "abc".
std::string tiny_vocab_text() {
  std::string s;
  std::string b64;
  auto enc = [](std::string_view bytes) {
    static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
      const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 | uint8_t(bytes[i + 2]);
      for (int k = 18; k >= 0; k -= 6) out.push_back(a[(v >> k) & 63]);
    }
    if (bytes.size() - i == 1) {
      const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
      out += {a[(v >> 18) & 63], a[(v >> 12) & 63], '=', '='};
    } else if (bytes.size() - i == 2) {
      const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8;
      out += {a[(v >> 18) & 63], a[(v >> 12) & 63], a[(v >> 6) & 63], '='};
    }
    return out;
  };
  for (int b = 0; b < 256; ++b) s += enc(std::string(1, char(b))) + " " + std::to_string(b) + "\n";
  s += enc("ab") + " 256\n" + enc("abc") + " 257\n";
  return s;
}

TEST(TokenizerVocab, LoadsKimiAndCl100k) {
  const Vocab k = Vocab::load_tiktoken(kData + "kimi/tiktoken.model");
  EXPECT_EQ(k.size(), 163584u);
  EXPECT_EQ(k.bytes(0), "!");
  EXPECT_EQ(k.bytes(163583), "\xE8\x87\xAA\xE4\xB8\xBB\xE6\x80\xA7");  // 自主性
  EXPECT_EQ(k.find("\xE8\x87\xAA\xE4\xB8\xBB\xE6\x80\xA7"), 163583);
  EXPECT_EQ(k.find("definitely not a token"), -1);
  EXPECT_EQ(Vocab::load_tiktoken(kData + "cl100k_base/cl100k_base.tiktoken").size(), 100256u);
}

TEST(TokenizerVocab, TinyVocabularyLoads) {
  TempDir d;
  const Vocab v = Vocab::load_tiktoken(d.write("v.tiktoken", tiny_vocab_text()));
  EXPECT_EQ(v.size(), 258u);
  EXPECT_EQ(v.find("abc"), 257);
  std::vector<TokenId> out;
  bpe_encode(v, "xabcab", out);
  EXPECT_EQ(out, (std::vector<TokenId>{'x', 257, 256}));
}

TEST(TokenizerVocab, Errors) {
  TempDir d;
  const std::string good = tiny_vocab_text();
  auto load = [&](const std::string& name, const std::string& text) {
    const std::string path = d.write(name, text);
    return expect_error([&] { Vocab::load_tiktoken(path); });
  };
  // Missing file.
  std::string msg = expect_error([&] { Vocab::load_tiktoken((d.path / "nope.tiktoken").string()); });
  EXPECT_NE(msg.find("nope.tiktoken"), std::string::npos) << msg;
  // Bad base64 on line 259.
  msg = load("b64.tiktoken", good + "YW*j 258\n");
  EXPECT_NE(msg.find("b64.tiktoken:259: invalid base64"), std::string::npos) << msg;
  msg = load("b64len.tiktoken", good + "YWJjZ 258\n");
  EXPECT_NE(msg.find("b64len.tiktoken:259: invalid base64"), std::string::npos) << msg;
  // Duplicate rank.
  msg = load("dup.tiktoken", good + "YWJjZA== 257\n");
  EXPECT_NE(msg.find("dup.tiktoken:259: duplicate rank 257 (also on line 258)"), std::string::npos) << msg;
  // A gap: rank 259 with no 258.
  msg = load("gap.tiktoken", good + "YWJjZA== 259\n");
  EXPECT_NE(msg.find("gap.tiktoken:259: rank 259 leaves a gap: no line has rank 258"), std::string::npos) << msg;
  // Malformed lines.
  msg = load("nospace.tiktoken", good + "YWJjZA==258\n");
  EXPECT_NE(msg.find("nospace.tiktoken:259: expected '<base64> <rank>'"), std::string::npos) << msg;
  msg = load("extra.tiktoken", good + "YWJjZA== 258 1\n");
  EXPECT_NE(msg.find("extra.tiktoken:259: expected"), std::string::npos) << msg;
  msg = load("rank.tiktoken", good + "YWJjZA== 25x\n");
  EXPECT_NE(msg.find("rank.tiktoken:259: rank '25x' is not a number"), std::string::npos) << msg;
  // Same bytes twice.
  msg = load("same.tiktoken", good + "YWJj 258\n");
  EXPECT_NE(msg.find("same.tiktoken:259: token bytes repeat those of rank 257"), std::string::npos) << msg;
  // Empty file; a vocabulary without all single bytes.
  msg = load("empty.tiktoken", "");
  EXPECT_NE(msg.find("empty.tiktoken: the vocabulary is empty"), std::string::npos) << msg;
  msg = load("nobytes.tiktoken", "YWI= 0\n");
  EXPECT_NE(msg.find("no token for the single byte 0x00"), std::string::npos) << msg;
}

TEST(TokenizerVocab, Base64) {
  std::string out;
  EXPECT_TRUE(base64_decode("aGVsbG8=", out));
  EXPECT_EQ(out, "hello");
  EXPECT_TRUE(base64_decode("IQ==", out));
  EXPECT_EQ(out, "!");
  EXPECT_FALSE(base64_decode("IQ=", out));
  EXPECT_FALSE(base64_decode("I=Q=", out));
  EXPECT_FALSE(base64_decode("aGVs bG8=", out));
}

// ------------------------------------------------------------------------------------- BPE

std::string random_text(std::mt19937& rng, size_t n_chars) {
  static const char* alphabet[] = {"a", "b", "e", "t", " ", "  ", "\n", "0", "1", "\xE4\xBD\xA0", "\xE5\xA5\xBD",
                                   "\xF0\x9F\x98\x80", "\xC3\xA9", ".", "'", "\xE2\x80\x8D", "\t", "A", "Z", "\xD0\xB0"};
  std::string s;
  for (size_t i = 0; i < n_chars; ++i) s += alphabet[rng() % (sizeof alphabet / sizeof *alphabet)];
  return s;
}

TEST(TokenizerBpe, ScanAndHeapAgree) {
  const Vocab& v = kimi().vocab();
  std::mt19937 rng(1234);
  for (int t = 0; t < 300; ++t) {
    std::string piece = random_text(rng, 1 + rng() % 120);
    if (t % 3 == 0) piece = std::string(1 + rng() % 300, "a \xE4"[rng() % 3]);  // runs, incl. invalid-alone bytes
    std::vector<TokenId> a, b;
    bpe_merge_scan(v, piece, a);
    bpe_merge_heap(v, piece, b);
    ASSERT_EQ(a, b) << piece;
    std::string back;
    for (const TokenId id : a) back += v.bytes(id);
    ASSERT_EQ(back, piece);
  }
}

// ------------------------------------------------------------------------- pre-tokenization

TEST(TokenizerPattern, Translation) {
  const std::string p = translate_pattern(kKimiPattern);
  EXPECT_EQ(p.find("&&"), std::string::npos) << p;
  EXPECT_NE(p.find("\\p{sc:Han}"), std::string::npos) << p;
  EXPECT_EQ(p.find("\\s"), std::string::npos) << p;
  EXPECT_EQ(translate_pattern(R"([\p{Lu}\p{M}&&[^\p{Han}]])", IntersectionStyle::kLookahead),
            R"((?:(?![\p{sc:Han}])[\p{Lu}\p{M}]))");
  EXPECT_EQ(translate_pattern(R"([\p{L}\p{M}&&[^\p{Han}]])"), R"([^\p{N}\p{P}\p{S}\p{Z}\p{C}\p{sc:Han}])");
  expect_error([] { translate_pattern(R"([\S])"); });
  expect_error([] { translate_pattern(R"([a&&b])"); });
  expect_error([] { translate_pattern(R"([^a&&[^b]])"); });
  expect_error([] { Pretokenizer("(unclosed"); });
}

TEST(TokenizerPattern, WhitespaceIsUnicodeWhiteSpace) {
  // U+0085 is White_Space (PCRE2's UCP \s lacks it); U+180E is not (PCRE2's \s has it).
  // Branch 5, ` ?[^\s\p{L}\p{N}]+`, stops at whitespace only.
  EXPECT_EQ(kimi().pieces("!\xC2\x85"), (std::vector<std::string>{"!", "\xC2\x85"}));
  EXPECT_EQ(kimi().pieces("!\xE1\xA0\x8E"), (std::vector<std::string>{"!\xE1\xA0\x8E"}));
  // Script=Han, not Script_Extensions: the ideographic full stop is punctuation.
  EXPECT_EQ(kimi().pieces("\xE4\xBD\xA0\xE3\x80\x82"), (std::vector<std::string>{"\xE4\xBD\xA0", "\xE3\x80\x82"}));
}

// -------------------------------------------------------------------------- special tokens

TEST(TokenizerSpecial, BuiltInTableMatchesSpecialTokensJson) {
  std::ifstream in(kData + "kimi/special_tokens.json");
  const auto j = nlohmann::json::parse(in);
  const SpecialTokens s = SpecialTokens::kimi_default(163584);
  EXPECT_EQ(s.size(), 258u);
  EXPECT_EQ(s.min_id(), 163584);
  EXPECT_EQ(s.max_id(), 163841);
  size_t named = 0;
  for (const auto& [id, entry] : j.at("added_tokens_decoder").items()) {
    EXPECT_EQ(*s.name(std::stoi(id)), entry.at("content").get<std::string>());
    ++named;
  }
  EXPECT_EQ(named, SpecialTokens::kimi_named_offsets().size());
  EXPECT_EQ(*s.name(163589), "<|reserved_token_163589|>");
  EXPECT_EQ(*s.name(163841), "<|reserved_token_163841|>");
  EXPECT_EQ(s.id("<|im_end|>"), 163586);
}

TEST(TokenizerSpecial, InjectionNeedsAllowSpecial) {
  const Tokenizer& tok = kimi();
  const std::string text = "hi<|im_end|><|im_assistant|>assistant<|im_middle|>";
  const auto with = tok.encode(text, true);
  const auto without = tok.encode(text, false);
  EXPECT_EQ(with[with.size() - 1], 163601);
  for (const TokenId id : without) EXPECT_FALSE(tok.is_special(id)) << id;
  EXPECT_EQ(tok.decode(without), text);
  EXPECT_EQ(tok.encode("<|im_end|>", true), std::vector<TokenId>{163586});
  EXPECT_EQ(tok.encode("<|reserved_token_163589|>", true), std::vector<TokenId>{163589});
  EXPECT_GT(tok.encode("<|reserved_token_0|>", true).size(), 1u);
  EXPECT_GT(tok.encode("<|IM_END|>", true).size(), 1u);
}

TEST(TokenizerSpecial, TokenizerConfigNamesAndErrors) {
  TempDir d;
  fs::create_symlink(fs::absolute(kData + "kimi/tiktoken.model"), d.path / "tiktoken.model");
  // A config that names fewer tokens than K2: the tool-call strings become reserved tokens.
  d.write("tokenizer_config.json",
          R"({"added_tokens_decoder": {"163584": {"content": "[BOS]", "special": true},
                                       "163586": {"content": "<|im_end|>", "special": true}}})");
  const Tokenizer tok = Tokenizer::load(d.path.string());
  EXPECT_EQ(tok.special_id("<|im_end|>"), 163586);
  EXPECT_EQ(tok.special_id("<|im_user|>"), std::nullopt);
  EXPECT_EQ(*tok.specials().name(163587), "<|reserved_token_163587|>");
  EXPECT_GT(tok.encode("<|tool_call_begin|>", true).size(), 1u);

  d.write("tokenizer_config.json", R"({"added_tokens_decoder": {"5": {"content": "x"}}})");
  std::string msg = expect_error([&] { Tokenizer::load(d.path.string()); });
  EXPECT_NE(msg.find("tokenizer_config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("outside the Kimi special range"), std::string::npos) << msg;
  d.write("tokenizer_config.json", "{not json");
  msg = expect_error([&] { Tokenizer::load(d.path.string()); });
  EXPECT_NE(msg.find("tokenizer_config.json: invalid JSON"), std::string::npos) << msg;
  msg = expect_error([&] { Tokenizer::load((d.path / "missing").string()); });
  EXPECT_NE(msg.find("not a directory"), std::string::npos) << msg;
}

// --------------------------------------------------------------------------------- decode

TEST(TokenizerDecode, UnknownIdsAndInvalidInput) {
  const Tokenizer& tok = kimi();
  EXPECT_EQ(tok.vocab_size(), 163842u);
  const std::string msg = expect_error([&] { tok.decode(std::vector<TokenId>{163842}); });
  EXPECT_NE(msg.find("token id 163842"), std::string::npos) << msg;
  expect_error([&] { tok.decode(std::vector<TokenId>{-1}); });
  expect_error([&] { tok.encode("ab\xFF", false); });
  EXPECT_TRUE(tok.encode("", true).empty());
}

TEST(TokenizerDecode, RandomRoundTrip) {
  std::mt19937 rng(99);
  for (int t = 0; t < 200; ++t) {
    const std::string s = random_text(rng, rng() % 200);
    ASSERT_EQ(kimi().decode(kimi().encode(s, false)), s);
  }
}

TEST(TokenizerStream, SplitCharactersAreHeldBack) {
  const Tokenizer& tok = kimi();
  StreamDecoder d(tok);
  // 😀 = F0 9F 98 80, one byte token each (golden dec_002).
  EXPECT_EQ(d.feed(172), "");
  EXPECT_EQ(d.feed(253), "");
  EXPECT_EQ(d.feed(246), "");
  EXPECT_EQ(d.pending_bytes(), 3u);
  EXPECT_EQ(d.feed(222), "\xF0\x9F\x98\x80");
  EXPECT_EQ(d.finish(), "");
  // E4 B8 then 'a': the broken sequence is replaced once 'a' shows it cannot complete.
  EXPECT_EQ(d.feed(160), "");
  EXPECT_EQ(d.feed(116), "");
  EXPECT_EQ(d.feed(tok.encode("a", false)[0]), "\xEF\xBF\xBD" "a");
  // An invalid byte is replaced at once; specials pass through by name.
  EXPECT_EQ(d.feed(187), "\xEF\xBF\xBD");
  EXPECT_EQ(d.feed(163586), "<|im_end|>");
}

TEST(TokenizerStream, IncompleteEndBecomesReplacement) {
  StreamDecoder d(kimi());
  EXPECT_EQ(d.feed(172), "");  // F0
  EXPECT_EQ(d.feed(253), "");  // 9F
  EXPECT_EQ(d.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(d.pending_bytes(), 0u);
  EXPECT_EQ(d.finish(), "");
}

TEST(TokenizerStream, MatchesWholeDecodeOnRandomIds) {
  const Tokenizer& tok = kimi();
  std::mt19937 rng(7);
  for (int t = 0; t < 300; ++t) {
    std::vector<TokenId> ids;
    const size_t n = 1 + rng() % 40;
    for (size_t i = 0; i < n; ++i) {
      // Mostly single bytes (ranks below 256 include the UTF-8 lead/continuation bytes).
      const uint32_t r = rng() % 10;
      ids.push_back(r < 6 ? TokenId(rng() % 256) : r < 9 ? TokenId(rng() % 163584) : TokenId(163584 + rng() % 258));
    }
    StreamDecoder d(tok);
    std::string streamed;
    for (const TokenId id : ids) {
      const std::string piece = d.feed(id);
      ASSERT_TRUE(utf8::is_valid(piece));
      streamed += piece;
    }
    streamed += d.finish();
    ASSERT_EQ(streamed, tok.decode(ids));
  }
}

// ---------------------------------------------------------------------- pathological input

// Sanitizer and unoptimized builds are 10-50x slower; they check the same paths on shorter runs.
#if defined(__SANITIZE_ADDRESS__) || !defined(NDEBUG)
constexpr size_t kRunBytes = 128 << 10;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr size_t kRunBytes = 128 << 10;
#else
constexpr size_t kRunBytes = 1 << 20;
#endif
#else
constexpr size_t kRunBytes = 1 << 20;
#endif

// One long run of a single kind must not be quadratic (neither in the regex nor in BPE): 1 MB
// of it takes well under a second in Release (bench/tokenizer_bench.cpp prints the times).
TEST(TokenizerSpeed, MegabyteRuns) {
  const Tokenizer& tok = kimi();
  TokenizerOptions cl;
  cl.pattern = kCl100kPattern;
  cl.kimi_chunking = false;  // plain tiktoken: no 25k splitter, so the whole run reaches BPE
  const Tokenizer cl100k(Vocab::load_tiktoken(kData + "cl100k_base/cl100k_base.tiktoken"), SpecialTokens(), cl);
  std::string cjk, emoji;
  while (cjk.size() < kRunBytes) cjk += "\xE4\xBD\xA0";
  while (emoji.size() < kRunBytes) emoji += "\xF0\x9F\x98\x80";
  const std::pair<const char*, std::string> runs[] = {
      {"spaces", std::string(kRunBytes, ' ')}, {"digits", std::string(kRunBytes, '7')},
      {"letter", std::string(kRunBytes, 'a')}, {"newlines", std::string(kRunBytes, '\n')},
      {"cjk", cjk},                            {"emoji", emoji},
  };
  for (const Tokenizer* t : {&tok, &cl100k}) {
    for (const auto& [name, text] : runs) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto ids = t->encode(text, false);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_LT(s, 5.0) << name;
      EXPECT_EQ(t->decode(ids), text) << name;
    }
  }
}

}  // namespace
}  // namespace kl
