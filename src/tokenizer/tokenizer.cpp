#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/utf8.h"

namespace kl {
namespace {

// tokenization_kimi.py: TIKTOKEN_MAX_ENCODE_CHARS and MAX_NO_WHITESPACES_CHARS.
constexpr size_t kSliceCodePoints = 400'000;
constexpr size_t kMaxRunCodePoints = 25'000;

// tokenization_kimi.py _split_whitespaces_or_nonwhitespaces: walks the code points counting the
// current run of str.isspace() / not; when a run would reach kMaxRunCodePoints + 1, the part
// ends just before that character (it may hold earlier runs of the other kind).
template <class F>
void split_long_runs(std::string_view s, F&& emit) {
  size_t i = 0, part_start = 0, run = 0;
  bool run_is_space = false;
  while (i < s.size()) {
    const size_t at = i;
    const bool space = utf8::python_isspace(utf8::next(s, i));
    if (at == 0 || space != run_is_space) {
      run_is_space = space;
      run = 1;
    } else if (++run > kMaxRunCodePoints) {
      emit(s.substr(part_start, at - part_start));
      part_start = at;
      run = 1;
    }
  }
  emit(s.substr(part_start));
}

}  // namespace

Tokenizer::Tokenizer(Vocab vocab, SpecialTokens specials, const TokenizerOptions& options)
    : vocab_(std::move(vocab)),
      specials_(std::move(specials)),
      options_(options),
      pre_(options.pattern, options.intersections) {
  if (vocab_.size() == 0) fail("tokenizer: empty vocabulary");
  if (!specials_.empty() && size_t(specials_.min_id()) < vocab_.size())
    fail("tokenizer: special token id ", specials_.min_id(), " collides with the mergeable ranks 0..",
         vocab_.size() - 1);
}

Tokenizer Tokenizer::load(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) fail(dir, ": not a directory (expected a model or tokenizer directory)");
  Vocab vocab = Vocab::load_tiktoken((fs::path(dir) / "tiktoken.model").string());
  const fs::path cfg = fs::path(dir) / "tokenizer_config.json";
  const TokenId base = TokenId(vocab.size());
  SpecialTokens specials = fs::exists(cfg) ? SpecialTokens::kimi_from_tokenizer_config(cfg.string(), base)
                                           : SpecialTokens::kimi_default(base);
  return Tokenizer(std::move(vocab), std::move(specials));
}

size_t Tokenizer::vocab_size() const {
  return specials_.empty() ? vocab_.size() : std::max(vocab_.size(), size_t(specials_.max_id()) + 1);
}

template <class F>
void Tokenizer::for_each_chunk(std::string_view text, F&& f) const {
  if (!options_.kimi_chunking) {
    f(text);
    return;
  }
  size_t i = 0;
  while (i < text.size()) {
    const size_t slice_start = i;
    for (size_t n = 0; n < kSliceCodePoints && i < text.size(); ++n) utf8::next(text, i);
    split_long_runs(text.substr(slice_start, i - slice_start), f);
  }
}

void Tokenizer::encode_ordinary(std::string_view text, std::vector<TokenId>& out,
                                std::vector<std::string_view>& scratch) const {
  scratch.clear();
  pre_.split(text, scratch);
  for (const std::string_view piece : scratch) bpe_encode(vocab_, piece, out);
}

void Tokenizer::encode_append(std::string_view text, bool allow_special, std::vector<TokenId>& out) const {
  if (const size_t bad = utf8::find_invalid(text); bad != std::string_view::npos)
    fail("encode: the text is not valid UTF-8 (byte ", bad, ")");
  std::vector<std::string_view> scratch;
  for_each_chunk(text, [&](std::string_view chunk) {
    if (!allow_special) {
      encode_ordinary(chunk, out, scratch);
      return;
    }
    size_t pos = 0;
    for (;;) {
      const SpecialTokens::Match m = specials_.find_first(chunk, pos);
      if (m.id < 0) {
        encode_ordinary(chunk.substr(pos), out, scratch);
        break;
      }
      encode_ordinary(chunk.substr(pos, m.pos - pos), out, scratch);
      out.push_back(m.id);
      pos = m.pos + m.len;
    }
  });
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 1);
  encode_append(text, allow_special, out);
  return out;
}

std::vector<std::string> Tokenizer::pieces(std::string_view text) const {
  if (const size_t bad = utf8::find_invalid(text); bad != std::string_view::npos)
    fail("pieces: the text is not valid UTF-8 (byte ", bad, ")");
  std::vector<std::string_view> views;
  for_each_chunk(text, [&](std::string_view chunk) { pre_.split(chunk, views); });
  return std::vector<std::string>(views.begin(), views.end());
}

std::string_view Tokenizer::token_bytes(TokenId id) const {
  if (id >= 0 && size_t(id) < vocab_.size()) return vocab_.bytes(id);
  if (const std::string* name = specials_.name(id)) return *name;
  if (specials_.empty()) fail("token id ", id, " is not in the vocabulary (ids 0..", vocab_.size() - 1, ")");
  fail("token id ", id, " is not in the vocabulary (ids 0..", vocab_.size() - 1, " and special ids in ",
       specials_.min_id(), "..", specials_.max_id(), ")");
}

std::string Tokenizer::decode_bytes(std::span<const TokenId> ids) const {
  std::string bytes;
  for (const TokenId id : ids) bytes += token_bytes(id);
  return bytes;
}

std::string Tokenizer::decode(std::span<const TokenId> ids) const { return utf8::decode_lossy(decode_bytes(ids)); }

std::string StreamDecoder::feed(TokenId id) {
  pending_ += tok_->token_bytes(id);
  const size_t keep = utf8::incomplete_tail(pending_);
  std::string out;
  utf8::append_lossy(std::string_view(pending_).substr(0, pending_.size() - keep), out);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = utf8::decode_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace kl
