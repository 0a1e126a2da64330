// UTF-8 helpers for the tokenizer: validation, Python-compatible lossy decoding, code-point
// iteration and Python's str.isspace(). Pure functions, no state.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kl::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at the start of `s` (1..4), or 0 when the bytes there
// are not a complete well-formed sequence (Unicode Table 3-7: no overlongs, no surrogates,
// nothing above U+10FFFF).
size_t sequence_length(std::string_view s);

// Offset of the first byte that is not part of a well-formed sequence, or npos when the whole
// string is valid UTF-8.
size_t find_invalid(std::string_view s);
inline bool is_valid(std::string_view s) { return find_invalid(s) == std::string_view::npos; }

// Appends `bytes` decoded as UTF-8 to `out`, replacing each maximal ill-formed subpart with one
// U+FFFD, exactly like Python's bytes.decode("utf-8", "replace") (Unicode §3.9 best practice).
void append_lossy(std::string_view bytes, std::string& out);
inline std::string decode_lossy(std::string_view bytes) {
  std::string out;
  append_lossy(bytes, out);
  return out;
}

// Length of the trailing bytes of `s` that are a proper prefix of some well-formed sequence
// (0..3): bytes that might still become valid when more bytes arrive. A streaming decoder holds
// these back.
size_t incomplete_tail(std::string_view s);

// Decodes the code point at s[i] of a string already known to be valid UTF-8 and advances i.
char32_t next(std::string_view s, size_t& i);

// Appends the UTF-8 encoding of code point `cp` (which must be a Unicode scalar value).
void append(char32_t cp, std::string& out);

// Python's str.isspace(): Unicode White_Space plus U+001C..U+001F (bidi class B/S/WS), which
// tokenization_kimi.py's run splitter uses. Not the same set as regex \s.
bool python_isspace(char32_t cp);

}  // namespace kl::utf8
