#include "tokenizer/special_tokens.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace kl {

// The Kimi K2-family `added_tokens_decoder` names (shared/tokenizer/kimi/special_tokens.json),
// as offsets from the first special id (163584 in the real vocabulary). The tool-call tokens
// are special=false in K2 configs, but tokenization_kimi.py still makes every id in the range a
// tiktoken special, so the flag does not matter for encoding.
const std::vector<std::pair<TokenId, std::string>>& SpecialTokens::kimi_named_offsets() {
  static const std::vector<std::pair<TokenId, std::string>> table = {
      {0, "[BOS]"},
      {1, "[EOS]"},
      {2, "<|im_end|>"},
      {3, "<|im_user|>"},
      {4, "<|im_assistant|>"},
      {6, "<|start_header_id|>"},
      {7, "<|end_header_id|>"},
      {9, "[EOT]"},
      {10, "<|im_system|>"},
      {11, "<|tool_calls_section_begin|>"},
      {12, "<|tool_calls_section_end|>"},
      {13, "<|tool_call_begin|>"},
      {14, "<|tool_call_argument_begin|>"},
      {15, "<|tool_call_end|>"},
      {17, "<|im_middle|>"},
      {254, "[UNK]"},
      {255, "[PAD]"},
  };
  return table;
}

namespace {
// tokenization_kimi.py: num_reserved_special_tokens = 256, and the special ids run over
// 256 + 2 values (163584..163841 for the real vocabulary).
constexpr TokenId kKimiSpecialCount = 256 + 2;
}  // namespace

SpecialTokens::SpecialTokens(const std::vector<std::pair<TokenId, std::string>>& tokens) {
  if (tokens.empty()) return;
  min_id_ = tokens.front().first;
  max_id_ = tokens.front().first;
  for (const auto& [id, name] : tokens) {
    if (id < 0) fail("special token '", name, "': negative id ", id);
    min_id_ = std::min(min_id_, id);
    max_id_ = std::max(max_id_, id);
  }
  names_.assign(size_t(max_id_ - min_id_) + 1, std::string());
  for (const auto& [id, name] : tokens) {
    if (name.empty()) fail("special token ", id, " has an empty name");
    if (!names_[id - min_id_].empty()) fail("special token id ", id, " is defined twice");
    if (!by_name_.emplace(name, id).second) fail("special token '", name, "' is defined twice");
    names_[id - min_id_] = name;
    first_byte_[static_cast<unsigned char>(name[0])] = true;
    if (std::find(lengths_.begin(), lengths_.end(), name.size()) == lengths_.end())
      lengths_.push_back(name.size());
  }
  std::sort(lengths_.rbegin(), lengths_.rend());
}

SpecialTokens SpecialTokens::kimi_family(TokenId num_base,
                                         const std::vector<std::pair<TokenId, std::string>>& named) {
  std::vector<std::string> names(kKimiSpecialCount);
  for (const auto& [id, name] : named) {
    if (id < num_base || id >= num_base + kKimiSpecialCount)
      fail("special token '", name, "' has id ", id, ", outside the Kimi special range ", num_base,
           "..", num_base + kKimiSpecialCount - 1);
    names[id - num_base] = name;
  }
  std::vector<std::pair<TokenId, std::string>> all;
  all.reserve(kKimiSpecialCount);
  for (TokenId i = 0; i < kKimiSpecialCount; ++i) {
    const TokenId id = num_base + i;
    all.emplace_back(id, names[i].empty() ? "<|reserved_token_" + std::to_string(id) + "|>" : names[i]);
  }
  return SpecialTokens(all);
}

SpecialTokens SpecialTokens::kimi_default(TokenId num_base) {
  std::vector<std::pair<TokenId, std::string>> named;
  for (const auto& [off, name] : kimi_named_offsets()) named.emplace_back(num_base + off, name);
  return kimi_family(num_base, named);
}

SpecialTokens SpecialTokens::kimi_from_tokenizer_config(const std::string& path, TokenId num_base) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
  if (!cfg.is_object() || !cfg.contains("added_tokens_decoder"))
    fail(path, ": no 'added_tokens_decoder' object");
  const auto& dec = cfg["added_tokens_decoder"];
  if (!dec.is_object()) fail(path, ": 'added_tokens_decoder' is not an object");
  std::vector<std::pair<TokenId, std::string>> named;
  for (const auto& [key, val] : dec.items()) {
    TokenId id = 0;
    size_t used = 0;
    try {
      id = TokenId(std::stoi(key, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != key.size()) fail(path, ": added_tokens_decoder key '", key, "' is not an id");
    if (!val.is_object() || !val.contains("content") || !val["content"].is_string())
      fail(path, ": added_tokens_decoder[\"", key, "\"] has no string 'content'");
    named.emplace_back(id, val["content"].get<std::string>());
  }
  try {
    return kimi_family(num_base, named);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

const std::string* SpecialTokens::name(TokenId id) const {
  if (id < min_id_ || id > max_id_) return nullptr;
  const std::string& n = names_[id - min_id_];
  return n.empty() ? nullptr : &n;
}

std::optional<TokenId> SpecialTokens::id(std::string_view name) const {
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

SpecialTokens::Match SpecialTokens::find_first(std::string_view text, size_t from) const {
  if (by_name_.empty()) return {std::string_view::npos, 0, -1};
  for (size_t p = from; p < text.size(); ++p) {
    if (!first_byte_[static_cast<unsigned char>(text[p])]) continue;
    for (const size_t len : lengths_) {  // longest first
      if (len > text.size() - p) continue;
      const auto it = by_name_.find(text.substr(p, len));
      if (it != by_name_.end()) return {p, len, it->second};
    }
  }
  return {std::string_view::npos, 0, -1};
}

}  // namespace kl
