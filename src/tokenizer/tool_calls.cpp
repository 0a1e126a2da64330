#include "tokenizer/tool_calls.h"

#include "core/error.h"

namespace kl {
namespace {

constexpr std::string_view kSectionBegin = "<|tool_calls_section_begin|>";
constexpr std::string_view kSectionEnd = "<|tool_calls_section_end|>";
constexpr std::string_view kCallBegin = "<|tool_call_begin|>";
constexpr std::string_view kArgBegin = "<|tool_call_argument_begin|>";
constexpr std::string_view kCallEnd = "<|tool_call_end|>";
constexpr std::string_view kAllTags[] = {kSectionBegin, kSectionEnd, kCallBegin, kArgBegin, kCallEnd};

std::string_view trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

// A tag that must not appear inside an id or an argument span: finding one means the end tag
// that should have come first is missing.
void no_tags_inside(std::string_view span, std::string_view missing, size_t call) {
  for (const std::string_view t : kAllTags)
    if (span.find(t) != std::string_view::npos)
      fail("tool calls: call ", call, ": missing ", missing, " (found ", t, " first)");
}

std::string name_from_id(std::string_view id, size_t call) {
  constexpr std::string_view kPrefix = "functions.";
  const size_t colon = id.rfind(':');
  if (id.substr(0, kPrefix.size()) != kPrefix || colon == std::string_view::npos || colon <= kPrefix.size())
    fail("tool calls: call ", call, ": id '", id, "' is not of the form functions.NAME:INDEX");
  const std::string_view index = id.substr(colon + 1);
  if (index.empty() || index.find_first_not_of("0123456789") != std::string_view::npos)
    fail("tool calls: call ", call, ": id '", id, "' does not end in ':' and a number");
  return std::string(id.substr(kPrefix.size(), colon - kPrefix.size()));
}

}  // namespace

AssistantReply parse_tool_calls(std::string_view text) {
  AssistantReply reply;
  const size_t begin = text.find(kSectionBegin);
  if (begin == std::string_view::npos) {
    for (const std::string_view t : {kSectionEnd, kCallBegin, kArgBegin, kCallEnd})
      if (text.find(t) != std::string_view::npos) fail("tool calls: ", t, " outside a tool-calls section");
    reply.content = std::string(text);
    return reply;
  }
  const size_t body_start = begin + kSectionBegin.size();
  const size_t end = text.find(kSectionEnd, body_start);
  if (end == std::string_view::npos) fail("tool calls: missing ", kSectionEnd);
  if (text.find(kSectionBegin, body_start) < end) fail("tool calls: nested ", kSectionBegin);
  const std::string_view after = text.substr(end + kSectionEnd.size());
  if (after.find(kSectionBegin) != std::string_view::npos) fail("tool calls: more than one tool-calls section");
  reply.content = std::string(text.substr(0, begin)) + std::string(after);

  std::string_view body = text.substr(body_start, end - body_start);
  for (size_t call = 0;; ++call) {
    body = trim(body);
    if (body.empty()) break;
    if (body.substr(0, kCallBegin.size()) != kCallBegin)
      fail("tool calls: expected ", kCallBegin, " in the section, found '", body.substr(0, 40), "'");
    body.remove_prefix(kCallBegin.size());
    const size_t arg = body.find(kArgBegin);
    if (arg == std::string_view::npos) fail("tool calls: call ", call, ": missing ", kArgBegin);
    const std::string_view id = trim(body.substr(0, arg));
    no_tags_inside(id, kArgBegin, call);
    body.remove_prefix(arg + kArgBegin.size());
    const size_t close = body.find(kCallEnd);
    if (close == std::string_view::npos) fail("tool calls: call ", call, ": missing ", kCallEnd);
    const std::string_view args = body.substr(0, close);
    no_tags_inside(args, kCallEnd, call);
    body.remove_prefix(close + kCallEnd.size());

    ToolCall tc;
    tc.id = std::string(id);
    tc.name = name_from_id(id, call);
    tc.arguments_text = std::string(trim(args));
    try {
      tc.arguments = nlohmann::ordered_json::parse(tc.arguments_text);
    } catch (const nlohmann::json::exception& e) {
      fail("tool calls: call ", call, " (", tc.id, "): arguments are not valid JSON: ", e.what());
    }
    reply.tool_calls.push_back(std::move(tc));
  }
  return reply;
}

}  // namespace kl
