// The tokenizer of the Kimi family (tokenization_kimi.py's TikTokenTokenizer, spec §7): tiktoken
// byte-level BPE over a mergeable vocabulary, a regex pre-tokenizer and special tokens. One
// Tokenizer object owns everything it uses; it is immutable after construction and safe to
// share between threads.
#pragma once
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/vocab.h"

namespace kl {

struct TokenizerOptions {
  std::string pattern = std::string(kKimiPattern);  // split regex, tiktoken syntax
  // tokenization_kimi.py encode(): cut the text into 400,000-code-point slices, then cut each so
  // that no run of whitespace / non-whitespace (Python str.isspace) exceeds 25,000 code points;
  // each part is encoded on its own (README §4 step 1). Off for plain tiktoken (cl100k, o200k).
  bool kimi_chunking = true;
  IntersectionStyle intersections = IntersectionStyle::kComplement;
};

class Tokenizer {
 public:
  Tokenizer(Vocab vocab, SpecialTokens specials, const TokenizerOptions& options = {});

  // A Kimi model or tokenizer directory: `tiktoken.model`, and the special-token names from
  // `tokenizer_config.json` (added_tokens_decoder) when that file exists, else the built-in
  // Kimi K2-family table. Errors name the file.
  static Tokenizer load(const std::string& dir);
  // The Kimi tokenizer compiled into the binary (the real tiktoken.model and the K2-family
  // special tokens): used with the built-in model, or when a checkpoint lacks tokenizer files.
  static Tokenizer builtin();

  // Text -> ids. With allow_special, exact special-token strings in `text` become their ids;
  // without, they are ordinary text (what user content must always be). No BOS is added.
  // `text` must be valid UTF-8 (else kl::Error).
  std::vector<TokenId> encode(std::string_view text, bool allow_special) const;
  void encode_append(std::string_view text, bool allow_special, std::vector<TokenId>& out) const;

  // The pre-tokenizer pieces of `text` in plain mode, after Kimi chunking when enabled.
  std::vector<std::string> pieces(std::string_view text) const;

  // Ids -> text: the token bytes concatenated (a special id gives its name), then decoded as
  // UTF-8 with each maximal ill-formed subpart replaced by U+FFFD, as Python does. Unknown ids
  // are a kl::Error.
  std::string decode(std::span<const TokenId> ids) const;
  std::string decode_bytes(std::span<const TokenId> ids) const;  // without the UTF-8 step
  std::string_view token_bytes(TokenId id) const;                 // kl::Error for unknown ids

  bool is_valid(TokenId id) const { return (id >= 0 && size_t(id) < vocab_.size()) || specials_.name(id); }
  bool is_special(TokenId id) const { return specials_.name(id) != nullptr; }
  std::optional<TokenId> special_id(std::string_view name) const { return specials_.id(name); }
  size_t num_base_tokens() const { return vocab_.size(); }
  // One past the largest id (163842 for Kimi; the model's embedding has 163840 rows).
  size_t vocab_size() const;

  const Vocab& vocab() const { return vocab_; }
  const SpecialTokens& specials() const { return specials_; }
  const Pretokenizer& pretokenizer() const { return pre_; }
  const TokenizerOptions& options() const { return options_; }

 private:
  template <class F>
  void for_each_chunk(std::string_view text, F&& f) const;
  void encode_ordinary(std::string_view text, std::vector<TokenId>& out, std::vector<std::string_view>& scratch) const;

  Vocab vocab_;
  SpecialTokens specials_;
  TokenizerOptions options_;
  Pretokenizer pre_;
};

// Incremental detokenizer: feed ids one at a time, get back the text they complete. Bytes that
// may still become a valid UTF-8 character are held back, so the output never contains a
// broken sequence mid-stream; invalid bytes become U+FFFD as soon as they are known invalid.
// The concatenated output of feed()... + finish() equals Tokenizer::decode of all the ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(&tok) {}
  std::string feed(TokenId id);
  // Flushes held-back bytes (an incomplete sequence becomes U+FFFD) and resets.
  std::string finish();
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  std::string pending_;
};

}  // namespace kl
