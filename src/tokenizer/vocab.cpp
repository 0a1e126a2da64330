#include "tokenizer/vocab.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"

namespace kl {
namespace {

// A fast 64-bit hash of short byte strings (most tokens are under 16 bytes).
uint64_t hash_bytes(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v) * 0x94d049bb133111ebull;
    h ^= h >> 29;
  }
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

int8_t base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return int8_t(c - 'A');
  if (c >= 'a' && c <= 'z') return int8_t(c - 'a' + 26);
  if (c >= '0' && c <= '9') return int8_t(c - '0' + 52);
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() % 4 != 0) return false;
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') pad = (in.size() >= 2 && in[in.size() - 2] == '=') ? 2 : 1;
  const size_t data_len = in.size() - pad;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < data_len; ++i) {
    const int8_t v = base64_value(static_cast<unsigned char>(in[i]));
    if (v < 0) return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

Vocab Vocab::load_tiktoken(const std::string& path) {
  MappedFile file(path);  // throws "path: cannot open: ..." for a missing file
  return parse_tiktoken(std::string_view(reinterpret_cast<const char*>(file.data()), file.size()), path);
}

Vocab Vocab::parse_tiktoken(std::string_view text, const std::string& path) {
  std::vector<Entry> entries;
  entries.reserve(text.size() / 16);
  size_t pos = 0, line_no = 0;
  std::string decoded;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;  // tiktoken's load skips empty lines
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp + 1 == line.size() ||
        line.find(' ', sp + 1) != std::string_view::npos)
      fail(path, ":", line_no, ": expected '<base64> <rank>', got '", line.substr(0, 80), "'");
    const std::string_view b64 = line.substr(0, sp), num = line.substr(sp + 1);
    if (!base64_decode(b64, decoded) || decoded.empty())
      fail(path, ":", line_no, ": invalid base64 token '", b64.substr(0, 80), "'");
    uint64_t rank = 0;
    for (const char c : num) {
      if (c < '0' || c > '9') fail(path, ":", line_no, ": rank '", num.substr(0, 40), "' is not a number");
      rank = rank * 10 + uint64_t(c - '0');
      if (rank > 0x7FFFFFFF) fail(path, ":", line_no, ": rank ", num, " is too large");
    }
    entries.push_back({decoded, TokenId(rank), line_no});
  }
  return from_entries(std::move(entries), path);
}

Vocab Vocab::from_entries(std::vector<Entry> entries, const std::string& source) {
  if (entries.empty()) fail(source, ": the vocabulary is empty");
  const size_t n = entries.size();
  // Ranks must be exactly 0..n-1: place each entry at its rank, reporting duplicates and gaps.
  std::vector<int64_t> at(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const Entry& e = entries[i];
    if (size_t(e.rank) >= n) {
      // With n entries and no duplicates, a rank >= n means some smaller rank is missing.
      std::vector<bool> seen(n, false);
      for (const Entry& f : entries)
        if (size_t(f.rank) < n) seen[f.rank] = true;
      const size_t gap = size_t(std::find(seen.begin(), seen.end(), false) - seen.begin());
      fail(source, ":", e.line, ": rank ", e.rank, " leaves a gap: no line has rank ", gap,
           " (ranks must run 0..", n - 1, ")");
    }
    if (at[e.rank] >= 0)
      fail(source, ":", e.line, ": duplicate rank ", e.rank, " (also on line ", entries[at[e.rank]].line, ")");
    at[e.rank] = int64_t(i);
  }
  Vocab v;
  v.offsets_.resize(n + 1);
  size_t total = 0;
  for (const Entry& e : entries) total += e.bytes.size();
  if (total > 0xFFFFFFFFull) fail(source, ": vocabulary too large");
  v.arena_.reserve(total);
  for (size_t r = 0; r < n; ++r) {
    v.offsets_[r] = uint32_t(v.arena_.size());
    v.arena_ += entries[at[r]].bytes;
  }
  v.offsets_[n] = uint32_t(v.arena_.size());

  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  v.table_.assign(cap, 0);
  const size_t mask = cap - 1;
  for (size_t r = 0; r < n; ++r) {
    const std::string_view b = v.bytes(TokenId(r));
    size_t slot = hash_bytes(b) & mask;
    while (v.table_[slot] != 0) {
      const TokenId other = TokenId(v.table_[slot] - 1);
      if (v.bytes(other) == b)
        fail(source, ":", entries[at[r]].line, ": token bytes repeat those of rank ", other,
             " (line ", entries[at[other]].line, ")");
      slot = (slot + 1) & mask;
    }
    v.table_[slot] = uint32_t(r + 1);
  }
  // Byte-level BPE starts from single bytes, so all 256 must be tokens.
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    if (v.find(std::string_view(&c, 1)) < 0)
      fail(source, ": the vocabulary has no token for the single byte 0x", "0123456789abcdef"[b >> 4],
           "0123456789abcdef"[b & 15], " (byte-level BPE needs all 256)");
  }
  return v;
}

TokenId Vocab::find(std::string_view b) const {
  if (table_.empty()) return -1;
  const size_t mask = table_.size() - 1;
  size_t slot = hash_bytes(b) & mask;
  for (;;) {
    const uint32_t e = table_[slot];
    if (e == 0) return -1;
    const uint32_t r = e - 1;
    const uint32_t off = offsets_[r], len = offsets_[r + 1] - off;
    if (len == b.size() && std::memcmp(arena_.data() + off, b.data(), len) == 0) return TokenId(r);
    slot = (slot + 1) & mask;
  }
}

}  // namespace kl
