#include "tokenizer/utf8.h"

namespace kl::utf8 {
namespace {

// Allowed range of the second byte for each lead byte (Unicode Table 3-7); the third and
// fourth bytes are always 80..BF. Returns the sequence length, or 0 for a byte that cannot
// start a sequence.
int lead_info(unsigned char b, unsigned char& lo, unsigned char& hi) {
  lo = 0x80;
  hi = 0xBF;
  if (b < 0x80) return 1;
  if (b < 0xC2) return 0;
  if (b < 0xE0) return 2;
  if (b < 0xF0) {
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
    return 3;
  }
  if (b < 0xF5) {
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
    return 4;
  }
  return 0;
}

// How many bytes of s (starting at 0) form a valid prefix of a sequence: returns the length of
// the maximal well-formed prefix, and sets `need` to the full length of the sequence the lead
// byte announces (0 for an invalid lead).
size_t valid_prefix(std::string_view s, int& need) {
  unsigned char lo, hi;
  need = lead_info(static_cast<unsigned char>(s[0]), lo, hi);
  if (need <= 1) return need;
  size_t k = 1;
  for (; k < static_cast<size_t>(need) && k < s.size(); ++k) {
    const auto c = static_cast<unsigned char>(s[k]);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (c < l || c > h) break;
  }
  return k;
}

}  // namespace

size_t sequence_length(std::string_view s) {
  if (s.empty()) return 0;
  int need = 0;
  const size_t k = valid_prefix(s, need);
  return need > 0 && k == static_cast<size_t>(need) ? k : 0;
}

size_t find_invalid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = sequence_length(s.substr(i));
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

void append_lossy(std::string_view s, std::string& out) {
  out.reserve(out.size() + s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      out.push_back(s[i++]);
      continue;
    }
    int need = 0;
    const size_t k = valid_prefix(s.substr(i), need);
    if (need > 0 && k == static_cast<size_t>(need)) {
      out.append(s.substr(i, k));
      i += k;
    } else {
      // k bytes form the maximal ill-formed subpart (at least the lead byte itself).
      out.append(kReplacement);
      i += k == 0 ? 1 : k;
    }
  }
}

size_t incomplete_tail(std::string_view s) {
  // A sequence is at most 4 bytes, so an unfinished one starts within the last 3 bytes.
  const size_t start = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = start; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80 || (b >= 0x80 && b < 0xC0)) continue;  // not a lead byte
    int need = 0;
    const size_t k = valid_prefix(s.substr(i), need);
    if (need > 1 && i + k == s.size() && k < static_cast<size_t>(need)) return k;
  }
  return 0;
}

char32_t next(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  auto cont = [&](size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k]) & 0x3F); };
  char32_t cp;
  if (b0 < 0xE0) {
    cp = (static_cast<char32_t>(b0 & 0x1F) << 6) | cont(1);
    i += 2;
  } else if (b0 < 0xF0) {
    cp = (static_cast<char32_t>(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
    i += 3;
  } else {
    cp = (static_cast<char32_t>(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    i += 4;
  }
  return cp;
}

void append(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool python_isspace(char32_t cp) {
  if (cp <= 0x20) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace kl::utf8
