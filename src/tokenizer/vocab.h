// The mergeable-token table of a tiktoken BPE: token bytes <-> rank. The rank is the token id
// and also the merge priority (lower merges first). spec §7.1, shared/tokenizer/README.md §1.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kl {

using TokenId = int32_t;

class Vocab {
 public:
  Vocab() = default;

  // Reads a tiktoken file: one "<base64 of the token bytes> <rank>" per line, ranks 0..N-1 with
  // no gaps or duplicates, every single byte present. Any other content is a kl::Error naming
  // the file and line.
  static Vocab load_tiktoken(const std::string& path);
  // The same from the file's text; `source` names it in errors.
  static Vocab parse_tiktoken(std::string_view text, const std::string& source);

  // Builds a table from parsed lines (token bytes, rank); `source` names the origin in errors,
  // `lines[i]` came from line `line_numbers[i]`. Checks the same invariants as load_tiktoken.
  struct Entry {
    std::string bytes;
    TokenId rank;
    size_t line;  // 1-based line in `source`, for error messages
  };
  static Vocab from_entries(std::vector<Entry> entries, const std::string& source);

  size_t size() const { return offsets_.empty() ? 0 : offsets_.size() - 1; }
  std::string_view bytes(TokenId rank) const {
    return std::string_view(arena_).substr(offsets_[rank], offsets_[rank + 1] - offsets_[rank]);
  }
  // Rank of the token with exactly these bytes, or -1.
  TokenId find(std::string_view bytes) const;

 private:
  std::string arena_;              // all token bytes, by rank
  std::vector<uint32_t> offsets_;  // [size+1] token r is arena_[offsets_[r], offsets_[r+1])
  std::vector<uint32_t> table_;    // open addressing, power-of-two size; slot = rank+1, 0 empty
};

// Strict standard base64 (RFC 4648 alphabet, '=' padding only at the end). False on bad input.
bool base64_decode(std::string_view in, std::string& out);

}  // namespace kl
