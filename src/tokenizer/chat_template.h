// The Kimi Instruct conversation format (spec §7.4), rendered natively from OpenAI-style
// messages instead of through a Jinja engine. It follows Kimi-K2-Instruct's chat template
// (tests/data/tokenizer/kimi/chat_template.Kimi-K2-Instruct.from-llama.cpp.jinja) without its
// default system prompt, which Kimi-Linear's template does not inject.
//
//   [tools]  <|im_system|>tool_declare<|im_middle|>{tools as compact JSON}<|im_end|>
//   per message: <|im_user|> / <|im_assistant|> / <|im_system|> (system, tool, any other role)
//                + {name or role} + <|im_middle|> + body + <|im_end|>
//   body: content; for an assistant with tool_calls: content + <|tool_calls_section_begin|>
//         (<|tool_call_begin|>{id}<|tool_call_argument_begin|>{arguments}<|tool_call_end|>)*
//         <|tool_calls_section_end|>; for a tool result: "## Return of {tool_call_id}\n" + content
//   [generation prompt] <|im_assistant|>assistant<|im_middle|>
//
// No BOS. Template tags become special ids; everything that comes from the caller (content,
// names, ids, arguments, tool schemas) is encoded as plain text, so it cannot inject a tag.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace kl {

// Generation stops on <|im_end|> (163586), spec §7.5.
inline constexpr std::string_view kChatStopToken = "<|im_end|>";

struct ChatOptions {
  bool add_generation_prompt = true;
  // The template's tojson is transformers' json.dumps(ensure_ascii=False): non-ASCII stays raw.
  bool ensure_ascii = false;
  // Kimi-K2-Instruct injects "You are Kimi, an AI assistant created by Moonshot AI." when the
  // first message is not a system message; Kimi-Linear does not (spec §7.4). Empty: none.
  std::string default_system_prompt;
};

struct ChatPrompt {
  std::string text;           // the rendered prompt, tags spelled out
  std::vector<TokenId> ids;   // what the model reads
};

// `messages`: array of {"role", "content", "name"?, "tool_calls"?, "tool_call_id"?}; content is
// a string, null, or a list of parts ({"type":"text","text":...} or an image part). `tools`:
// null or an array of tool declarations, emitted as given (key order kept). Malformed input is
// a kl::Error saying which message and field.
ChatPrompt render_chat(const Tokenizer& tok, const nlohmann::ordered_json& messages,
                       const nlohmann::ordered_json& tools, const ChatOptions& options = {});

// A request object {"messages": [...], "tools": [...]?} or a bare messages array.
ChatPrompt render_chat_request(const Tokenizer& tok, const nlohmann::ordered_json& request,
                               const ChatOptions& options = {});

// The ids that end an assistant turn: <|im_end|>.
std::vector<TokenId> chat_stop_ids(const Tokenizer& tok);

}  // namespace kl
