// Parsing the tool-call section a Kimi model writes (the inverse of the assistant branch of
// the chat template, spec §7.4):
//   <|tool_calls_section_begin|>
//     <|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city":"Paris"}<|tool_call_end|>
//     ...
//   <|tool_calls_section_end|>
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace kl {

struct ToolCall {
  std::string id;                    // "functions.get_weather:0", as written by the model
  std::string name;                  // "get_weather": between "functions." and the last ':'
  std::string arguments_text;        // the JSON text as written
  nlohmann::ordered_json arguments;  // parsed
};

struct AssistantReply {
  std::string content;  // the text outside the tool-call section
  std::vector<ToolCall> tool_calls;
};

// `text`: a decoded assistant reply with special tokens spelled out (Tokenizer::decode), without
// the <|im_end|> stop token. Text without a section is all content. A malformed section
// (missing end tag, a tag out of place, an id not of the form functions.NAME:INDEX, arguments
// that are not valid JSON) is a kl::Error that says what is wrong.
AssistantReply parse_tool_calls(std::string_view text);

}  // namespace kl
