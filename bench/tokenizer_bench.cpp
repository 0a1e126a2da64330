// Tokenizer speed on one core: MB/s encoding and decoding mixed text (every golden text of
// tests/data/tokenizer/goldens/kimi.jsonl, concatenated and repeated to a few MB), and the time
// taken by 1 MB runs of a single kind (the inputs that make a naive BPE quadratic).
//
// usage: tokenizer_bench [DATA_DIR]   (default: the source tree's tests/data/tokenizer)
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string mixed_text(const std::string& goldens) {
  std::ifstream in(goldens);
  if (!in) kl::fail(goldens, ": cannot open");
  std::string line, text;
  while (std::getline(in, line)) {
    const auto rec = nlohmann::json::parse(line);
    if (rec.at("kind") == "encode") text += rec.at("text").get<std::string>() + "\n";
  }
  const std::string once = text;
  while (text.size() < (4u << 20)) text += once;
  return text;
}

// Best of `reps` runs, in MB/s of `bytes`.
template <class F>
double best_mbps(size_t bytes, int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return double(bytes) / 1e6 / best;
}

void bench_mixed(const char* name, const kl::Tokenizer& tok, const std::string& text) {
  std::vector<kl::TokenId> ids;
  const double enc = best_mbps(text.size(), 3, [&] { ids = tok.encode(text, false); });
  const double enc_sp = best_mbps(text.size(), 3, [&] { tok.encode(text, true); });
  const double dec = best_mbps(text.size(), 3, [&] { tok.decode(ids); });
  std::printf("%-8s mixed text %.1f MB, %zu tokens (%.2f bytes/token): encode %.1f MB/s, encode(allow_special) %.1f MB/s, "
              "decode %.1f MB/s\n",
              name, double(text.size()) / 1e6, ids.size(), double(text.size()) / double(ids.size()), enc, enc_sp, dec);
}

void bench_runs(const char* name, const kl::Tokenizer& tok) {
  std::string cjk, emoji;
  while (cjk.size() < (1u << 20)) cjk += "\xE4\xBD\xA0";    // 你
  while (emoji.size() < (1u << 20)) emoji += "\xF0\x9F\x98\x80";  // 😀
  const std::pair<const char*, std::string> runs[] = {
      {"spaces", std::string(1u << 20, ' ')}, {"digits", std::string(1u << 20, '7')},
      {"letter a", std::string(1u << 20, 'a')}, {"newlines", std::string(1u << 20, '\n')},
      {"CJK", cjk}, {"emoji", emoji},
  };
  std::printf("%-8s 1 MB runs:", name);
  for (const auto& [what, text] : runs) {
    const auto t0 = Clock::now();
    const auto ids = tok.encode(text, false);
    std::printf("  %s %.0f ms (%zu tok)", what, seconds_since(t0) * 1e3, ids.size());
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string data = argc > 1 ? argv[1] : KL_TOKENIZER_DATA;
    const auto t0 = Clock::now();
    const kl::Tokenizer kimi = kl::Tokenizer::load(data + "/kimi");
    std::printf("load kimi tokenizer: %.0f ms (PCRE2 JIT %s)\n", seconds_since(t0) * 1e3,
                kimi.pretokenizer().jit() ? "on" : "off");
    kl::TokenizerOptions cl;
    cl.pattern = kl::kCl100kPattern;
    cl.kimi_chunking = false;
    const kl::Tokenizer cl100k(kl::Vocab::load_tiktoken(data + "/cl100k_base/cl100k_base.tiktoken"),
                               kl::SpecialTokens({{100257, "<|endoftext|>"}}), cl);
    const std::string text = mixed_text(data + "/goldens/kimi.jsonl");
    bench_mixed("kimi", kimi, text);
    bench_mixed("cl100k", cl100k, text);
    bench_runs("kimi", kimi);
    bench_runs("cl100k", cl100k);
  } catch (const kl::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
