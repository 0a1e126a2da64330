// Regex pre-tokenization (spec §7.2): cut text into the pieces that BPE then encodes
// separately. Patterns are written in tiktoken's syntax (Rust fancy-regex: class intersection
// `&&`, Unicode White_Space `\s`, Script-only `\p{Han}`) and translated to PCRE2 (UTF + UCP,
// JIT when available), which has none of those three exactly.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kl {

// Kimi's TikTokenTokenizer.pat_str (shared/tokenizer/README.md §5.1), the 8 branches joined by '|'.
inline constexpr std::string_view kKimiPattern =
    R"([\p{Han}]+)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*)"
    R"(|\s*[\r\n]+)"
    R"(|\s+(?!\S))"
    R"(|\s+)";

// tiktoken 0.14.0 cl100k_base (README §5.2).
inline constexpr std::string_view kCl100kPattern =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s)";

// tiktoken o200k_base (README §5.3).
inline constexpr std::string_view kO200kPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// How `[A&&[^B]]` is written for PCRE2.
enum class IntersectionStyle {
  // When A is a union of general categories: one negated class [^ (complement of A) B ], which
  // is exact because general categories partition the code points. Fastest: a plain class
  // repeat, no backtracking frames. Falls back to kLookahead for any other A.
  kComplement,
  // Always (?:(?![B])[A]). Kept to check the two forms against each other in tests.
  kLookahead,
};

// Translates a tiktoken/fancy-regex pattern to PCRE2 syntax: `\s`/`\S` become the explicit
// Unicode White_Space set (PCRE2's UCP \s differs: it adds U+180E and lacks U+0085), `\p{Script}`
// becomes `\p{sc:Script}` (PCRE2 >= 10.40 reads a bare script as Script_Extensions), and class
// intersections are rewritten as above. Unsupported constructs are a kl::Error.
std::string translate_pattern(std::string_view pattern, IntersectionStyle style = IntersectionStyle::kComplement);

class Pretokenizer {
 public:
  explicit Pretokenizer(std::string_view pattern, IntersectionStyle style = IntersectionStyle::kComplement);
  ~Pretokenizer();
  Pretokenizer(Pretokenizer&&) noexcept;
  Pretokenizer& operator=(Pretokenizer&&) noexcept;
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Appends to `pieces` the successive leftmost-first matches in `text`, which must be valid
  // UTF-8 (not checked again here). Text no branch matches is skipped, as in tiktoken.
  // Thread-safe: the compiled pattern is shared read-only, match state is per call.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

  const std::string& pattern() const;        // as given
  const std::string& pcre2_pattern() const;  // as compiled
  bool jit() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kl
