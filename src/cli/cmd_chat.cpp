// chat: an interactive multi-turn conversation that keeps the session state between turns, so
// a new turn costs only its new tokens. Commands: /reset, /save FILE, /load FILE, /exit.
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/sampling_flags.h"
#include "core/error.h"
#include "runtime/generate.h"
#include "tokenizer/chat_template.h"

namespace kl::cli {

namespace {
const char* kHelp =
    "Type a message and press Enter. Commands:\n"
    "  /reset        start a new conversation\n"
    "  /save FILE    save the session (history + every KDA/conv state + MLA cache)\n"
    "  /load FILE    load a saved session and continue it\n"
    "  /exit         quit (also Ctrl-D)\n";

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}
}  // namespace

void add_chat_command(CLI::App& app, int& rc) {
  auto* cmd = app.add_subcommand("chat", "Interactive chat that keeps its state between turns");
  struct Opts {
    ModelFlags f;
    SamplingFlags s;
    std::string system, tokenizer;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(cmd, o->f);
  cmd->add_option("--system", o->system, "System prompt of the conversation");
  cmd->add_option("--tokenizer", o->tokenizer, "Directory with tiktoken.model (default: the model directory)");
  add_sampling_flags(cmd, o->s, 0.6f);
  o->s.max_tokens = 1024;
  cmd->callback([o, &rc] {
    auto engine = open_engine(o->f);
    Tokenizer tok = open_tokenizer(o->f.model, o->tokenizer);
    Session s(*engine);
    const SamplingParams sampling = finish_sampling(o->s);
    const std::vector<TokenId> stops = chat_stop_ids(tok);
    const int32_t im_end = stops.at(0);
    std::printf("%s", kHelp);
    std::string line;
    for (;;) {
      std::printf("\n> ");
      std::fflush(stdout);
      if (!std::getline(std::cin, line)) break;
      line = trim(line);
      if (line.empty()) continue;
      try {
        if (line == "/exit" || line == "/quit") break;
        if (line == "/help") {
          std::printf("%s", kHelp);
          continue;
        }
        if (line == "/reset") {
          s.reset();
          std::printf("[new conversation]\n");
          continue;
        }
        if (line.rfind("/save", 0) == 0 || line.rfind("/load", 0) == 0) {
          const std::string file = trim(line.substr(5));
          if (file.empty()) {
            std::printf("[usage: %s FILE]\n", line.substr(0, 5).c_str());
            continue;
          }
          if (line[1] == 's') {
            s.save(file);
            std::printf("[saved %lld tokens to %s]\n", (long long)s.n_tokens(), file.c_str());
          } else {
            s.load(file);
            std::printf("[loaded %lld tokens from %s]\n", (long long)s.n_tokens(), file.c_str());
          }
          continue;
        }
        if (line[0] == '/' && line.find(' ') == std::string::npos && line.size() < 16) {
          std::printf("[unknown command %s; /help lists them]\n", line.c_str());
          continue;
        }
        // This turn's new messages only: the state already holds the conversation so far.
        nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
        if (s.n_tokens() == 0 && !o->system.empty()) msgs.push_back({{"role", "system"}, {"content", o->system}});
        msgs.push_back({{"role", "user"}, {"content", line}});
        GenerationRequest req;
        req.prompt = render_chat(tok, msgs, nullptr).ids;
        req.sampling = sampling;
        req.sampling.seed = sampling.seed + uint64_t(s.n_tokens());  // a fresh stream every turn, reproducible
        req.max_tokens = o->s.max_tokens;
        req.stop_ids = stops;
        req.stop_strings = o->s.stop;
        GenerationResult r = generate_text(s, tok, req, [](std::string_view t) {
          std::fwrite(t.data(), 1, t.size(), stdout);
          std::fflush(stdout);
        });
        s.feed({im_end});  // close the assistant turn in the state, as the template would
        const double tg = r.gen_seconds > 0 ? double(r.ids.size()) / r.gen_seconds : 0;
        std::printf("\n[%lld prompt tokens processed this turn | %zu generated at %.1f tok/s | context %lld tokens | stop: %s]\n",
                    (long long)r.prompt_tokens, r.ids.size(), tg, (long long)s.n_tokens(), r.stop_reason.c_str());
      } catch (const Error& e) {
        std::printf("\n[error: %s]\n", e.what());
      }
    }
    std::printf("\n");
    rc = 0;
  });
}

}  // namespace kl::cli
