#include "tokenizer/chat_template.h"

#include <deque>

#include "core/error.h"
#include "tokenizer/py_json.h"

namespace kl {
namespace {

using ojson = nlohmann::ordered_json;

// Accumulates the prompt. A tag that is a special token of this tokenizer becomes its id; one
// that is not (e.g. <|media_start|> with the K2 table) is ordinary text, as it would be when
// the HF tokenizer encodes the rendered string. Adjacent text is encoded as one run, so BPE and
// the split regex see it as the HF tokenizer does.
class PromptBuilder {
 public:
  explicit PromptBuilder(const Tokenizer& tok) : tok_(tok) {}

  void tag(std::string_view name) {
    out_.text += name;
    if (const auto id = tok_.special_id(name)) {
      flush();
      out_.ids.push_back(*id);
    } else {
      pending_ += name;
    }
  }
  void text(std::string_view s) {
    out_.text += s;
    pending_ += s;
  }
  ChatPrompt finish() {
    flush();
    return std::move(out_);
  }

 private:
  void flush() {
    if (pending_.empty()) return;
    tok_.encode_append(pending_, /*allow_special=*/false, out_.ids);
    pending_.clear();
  }
  const Tokenizer& tok_;
  ChatPrompt out_;
  std::string pending_;
};

std::string where(size_t m) { return "chat: messages[" + std::to_string(m) + "]"; }

// Optional string field: absent or null -> empty; another type is an error.
std::string string_field(const ojson& obj, const char* key, const std::string& ctx) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_string()) fail(ctx, ".", key, " must be a string");
  return it->get<std::string>();
}

// The template's render_content macro.
void render_content(PromptBuilder& b, const ojson& msg, const std::string& ctx) {
  const auto it = msg.find("content");
  if (it == msg.end() || it->is_null()) return;
  if (it->is_string()) {
    b.text(it->get_ref<const std::string&>());
    return;
  }
  if (!it->is_array()) fail(ctx, ".content must be a string, null or a list of parts");
  for (size_t p = 0; p < it->size(); ++p) {
    const ojson& part = (*it)[p];
    const std::string pctx = ctx + ".content[" + std::to_string(p) + "]";
    if (!part.is_object()) fail(pctx, " must be an object");
    const std::string type = string_field(part, "type", pctx);
    if (type == "image" || part.contains("image") || part.contains("image_url")) {
      b.tag("<|media_start|>");
      b.text("image");
      b.tag("<|media_content|>");
      b.tag("<|media_pad|>");
      b.tag("<|media_end|>");
      // The template line ends after <|media_end|>; with trim_blocks/lstrip_blocks that newline
      // is kept (only the indentation before the next {% else %} is stripped).
      b.text("\n");
    } else if (part.contains("text")) {
      if (!part["text"].is_string()) fail(pctx, ".text must be a string");
      b.text(part["text"].get_ref<const std::string&>());
    } else {
      fail(pctx, ": unsupported content part (type '", type, "'); expected text or image");
    }
  }
}

}  // namespace

ChatPrompt render_chat(const Tokenizer& tok, const ojson& messages, const ojson& tools, const ChatOptions& opt) {
  if (!messages.is_array()) fail("chat: 'messages' must be an array");
  if (!tools.is_null() && !tools.is_array()) fail("chat: 'tools' must be an array");
  const PyJsonStyle tool_style{",", ":", opt.ensure_ascii};   // spec §7.4: compact separators
  const PyJsonStyle args_style{", ", ": ", opt.ensure_ascii};  // plain `| tojson` in the template
  PromptBuilder b(tok);

  if (tools.is_array() && !tools.empty()) {
    b.tag("<|im_system|>");
    b.text("tool_declare");
    b.tag("<|im_middle|>");
    b.text(py_json_dumps(tools, tool_style));
    b.tag("<|im_end|>");
  }

  // Ids of tool calls not yet answered, for tool messages that carry no tool_call_id.
  std::deque<std::string> open_calls;
  size_t call_counter = 0;
  for (size_t m = 0; m < messages.size(); ++m) {
    const ojson& msg = messages[m];
    const std::string ctx = where(m);
    if (!msg.is_object()) fail(ctx, " must be an object");
    const std::string role = string_field(msg, "role", ctx);
    if (role.empty()) fail(ctx, " has no 'role'");
    if (m == 0 && role != "system" && !opt.default_system_prompt.empty()) {
      b.tag("<|im_system|>");
      b.text("system");
      b.tag("<|im_middle|>");
      b.text(opt.default_system_prompt);
      b.tag("<|im_end|>");
    }
    const std::string name = string_field(msg, "name", ctx);
    b.tag(role == "user" ? "<|im_user|>" : role == "assistant" ? "<|im_assistant|>" : "<|im_system|>");
    b.text(name.empty() ? role : name);
    b.tag("<|im_middle|>");

    const auto calls = msg.find("tool_calls");
    const bool has_calls = calls != msg.end() && !calls->is_null() && !(calls->is_array() && calls->empty());
    if (role == "assistant" && has_calls) {
      if (!calls->is_array()) fail(ctx, ".tool_calls must be an array");
      render_content(b, msg, ctx);
      b.tag("<|tool_calls_section_begin|>");
      for (size_t c = 0; c < calls->size(); ++c) {
        const ojson& call = (*calls)[c];
        const std::string cctx = ctx + ".tool_calls[" + std::to_string(c) + "]";
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object())
          fail(cctx, " must be an object with a 'function' object");
        const ojson& fn = call["function"];
        // The caller's id when given (ids the model produced look like functions.NAME:IDX);
        // otherwise K2's numbering.
        std::string id = string_field(call, "id", cctx);
        if (id.empty()) {
          const std::string fname = string_field(fn, "name", cctx + ".function");
          if (fname.empty()) fail(cctx, ".function has no 'name' (needed to number the call)");
          id = "functions." + fname + ":" + std::to_string(call_counter);
        }
        ++call_counter;
        open_calls.push_back(id);
        const auto args = fn.find("arguments");
        if (args == fn.end()) fail(cctx, ".function has no 'arguments'");
        b.tag("<|tool_call_begin|>");
        b.text(id);
        b.tag("<|tool_call_argument_begin|>");
        b.text(args->is_string() ? args->get<std::string>() : py_json_dumps(*args, args_style));
        b.tag("<|tool_call_end|>");
      }
      b.tag("<|tool_calls_section_end|>");
    } else if (role == "tool") {
      std::string id = string_field(msg, "tool_call_id", ctx);
      if (id.empty() && !open_calls.empty()) id = open_calls.front();
      if (id.empty()) id = "functions." + (name.empty() ? std::string("unknown") : name) + ":" + std::to_string(call_counter);
      if (!open_calls.empty()) open_calls.pop_front();
      b.text("## Return of " + id + "\n");
      render_content(b, msg, ctx);
    } else {
      render_content(b, msg, ctx);
    }
    b.tag("<|im_end|>");
  }
  if (opt.add_generation_prompt) {
    b.tag("<|im_assistant|>");
    b.text("assistant");
    b.tag("<|im_middle|>");
  }
  return b.finish();
}

ChatPrompt render_chat_request(const Tokenizer& tok, const ojson& request, const ChatOptions& opt) {
  if (request.is_array()) return render_chat(tok, request, nullptr, opt);
  if (!request.is_object() || !request.contains("messages"))
    fail("chat: expected {\"messages\": [...], \"tools\": [...]} or a messages array");
  const auto tools = request.find("tools");
  return render_chat(tok, request["messages"], tools == request.end() ? ojson(nullptr) : *tools, opt);
}

std::vector<TokenId> chat_stop_ids(const Tokenizer& tok) {
  const auto id = tok.special_id(kChatStopToken);
  if (!id) fail("tokenizer has no ", kChatStopToken, " token");
  return {*id};
}

}  // namespace kl
