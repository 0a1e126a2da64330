// Special tokens: ids above the mergeable vocabulary whose text is a reserved string such as
// "<|im_end|>". spec §7.3, shared/tokenizer/README.md §4 step 2 and §6.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/vocab.h"

namespace kl {

class SpecialTokens {
 public:
  SpecialTokens() = default;
  // Explicit table: every (id, name) pair is a special token. Ids and names must be unique.
  explicit SpecialTokens(const std::vector<std::pair<TokenId, std::string>>& tokens);

  // Kimi family (tokenization_kimi.py): ids num_base .. num_base+257 (256 reserved + 2). Names
  // come from `named` (id -> content); the others are "<|reserved_token_{id}|>".
  static SpecialTokens kimi_family(TokenId num_base, const std::vector<std::pair<TokenId, std::string>>& named);
  // The built-in Kimi K2-family table (shared/tokenizer/kimi/special_tokens.json), shifted so
  // that [BOS] is `num_base` (163584 for the real vocabulary).
  static SpecialTokens kimi_default(TokenId num_base);
  // Reads `added_tokens_decoder` of a HF tokenizer_config.json; errors name the file.
  static SpecialTokens kimi_from_tokenizer_config(const std::string& path, TokenId num_base);
  // The built-in named entries as offsets from num_base ([BOS] = 0), for tests and tools.
  static const std::vector<std::pair<TokenId, std::string>>& kimi_named_offsets();

  bool empty() const { return by_name_.empty(); }
  size_t size() const { return by_name_.size(); }
  TokenId min_id() const { return min_id_; }
  TokenId max_id() const { return max_id_; }
  // Name of special id `id`, or nullptr when `id` is not a special token.
  const std::string* name(TokenId id) const;
  std::optional<TokenId> id(std::string_view name) const;

  // Leftmost occurrence of any special-token string in text[from..]: exact, case-sensitive,
  // the longest one when several start at the same byte. Returns {npos, 0, -1} when none.
  struct Match {
    size_t pos;
    size_t len;
    TokenId id;
  };
  Match find_first(std::string_view text, size_t from) const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, TokenId, Hash, std::equal_to<>> by_name_;
  std::vector<std::string> names_;  // [max_id - min_id + 1], empty where an id is not special
  TokenId min_id_ = 0, max_id_ = -1;
  std::vector<size_t> lengths_;      // distinct name lengths, longest first
  bool first_byte_[256] = {};        // bytes that start some name
};

}  // namespace kl
