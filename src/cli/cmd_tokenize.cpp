// tokenize, detokenize: text <-> token ids with a model's tokenizer (spec §7).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace kl::cli {
namespace {

struct TokenizerFlags {
  std::string model, tokenizer;
};

void add_tokenizer_flags(CLI::App* cmd, TokenizerFlags& f) {
  auto* m = cmd->add_option("--model,-m", f.model,
                            "Model directory (its tiktoken.model and tokenizer_config.json). Default: the built-in "
                            "Kimi tokenizer");
  auto* t = cmd->add_option("--tokenizer", f.tokenizer, "Tokenizer directory (tiktoken.model, tokenizer_config.json)");
  m->excludes(t);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void print_ids(const std::vector<TokenId>& ids, bool json) {
  if (json) {
    std::printf("%s\n", nlohmann::json{{"ids", ids}}.dump().c_str());
    return;
  }
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line.push_back(',');
    line += std::to_string(ids[i]);
  }
  std::printf("%s\n", line.c_str());
}

}  // namespace

void add_tokenize_commands(CLI::App& app, int& rc) {
  {
    auto* cmd = app.add_subcommand("tokenize", "Encode text (or a chat) into token ids");
    struct Opts {
      TokenizerFlags t;
      std::string text, file, chat;
      bool special = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    add_tokenizer_flags(cmd, o->t);
    auto* text = cmd->add_option("--text", o->text, "Text to encode");
    auto* file = cmd->add_option("--file", o->file, "Encode the contents of this file (UTF-8)");
    auto* chat = cmd->add_option("--chat", o->chat,
                                 "Render this OpenAI-style chat ({\"messages\": [...], \"tools\": [...]} or a messages "
                                 "array) with the Kimi template and the generation prompt, then encode it");
    text->excludes(file)->excludes(chat);
    file->excludes(chat);
    cmd->add_flag("--special", o->special, "Treat special-token strings such as <|im_end|> in the text as special ids");
    cmd->add_flag("--json", o->json, "Print {\"ids\": [...]}");
    cmd->callback([o, text, file, chat, &rc] {
      if (!*text && !*file && !*chat) fail("tokenize: one of --text, --file or --chat is required");
      if (*chat && o->special) fail("tokenize: --special does not apply to --chat (message content is always plain text)");
      const Tokenizer tok = open_tokenizer(o->t.model, o->t.tokenizer);  // notes a model's chat_template.jinja
      std::vector<TokenId> ids;
      if (*chat) {
        const std::string& dir = o->t.tokenizer;
        if (!dir.empty() && std::filesystem::exists(std::filesystem::path(dir) / "chat_template.jinja"))
          std::fprintf(stderr,
                       "note: %s/chat_template.jinja is not interpreted; the native Kimi chat renderer is used\n",
                       dir.c_str());
        nlohmann::ordered_json request;
        try {
          request = nlohmann::ordered_json::parse(read_text_file(o->chat));
        } catch (const nlohmann::json::exception& e) {
          fail(o->chat, ": invalid JSON: ", e.what());
        }
        ids = render_chat_request(tok, request).ids;
      } else {
        ids = tok.encode(*text ? o->text : read_text_file(o->file), o->special);
      }
      print_ids(ids, o->json);
      rc = 0;
    });
  }
  {
    auto* cmd = app.add_subcommand("detokenize", "Decode token ids into text");
    struct Opts {
      TokenizerFlags t;
      std::string ids;
      bool json = false;
    };
    auto o = std::make_shared<Opts>();
    add_tokenizer_flags(cmd, o->t);
    cmd->add_option("--ids", o->ids, "Token ids, e.g. 19180,2695")->required();
    cmd->add_flag("--json", o->json, "Print {\"text\": ...}");
    cmd->callback([o, &rc] {
      const std::vector<int32_t> ids = parse_ids(o->ids, "--ids");
      const Tokenizer tok = open_tokenizer(o->t.model, o->t.tokenizer);
      const std::string text = tok.decode(ids);  // unknown ids are a kl::Error
      if (o->json) {
        std::printf("%s\n", nlohmann::json{{"text", text}}.dump().c_str());
      } else {
        std::fwrite(text.data(), 1, text.size(), stdout);  // the text may hold NUL bytes
        std::fputc('\n', stdout);
      }
      rc = 0;
    });
  }
}

}  // namespace kl::cli
