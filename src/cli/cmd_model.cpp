// inspect, generate, logits: the commands that look at or run a model on token ids.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "format/npy.h"
#include "model/synthetic.h"
#include "cli/sampling_flags.h"
#include "runtime/generate.h"
#include "runtime/inspect.h"
#include "tokenizer/chat_template.h"

namespace kl::cli {

namespace {
void print_ids_result(const GenerationResult& r, bool json, bool builtin) {
  if (json) {
    nlohmann::json j = {{"generated_ids", r.ids},
                        {"prompt_tokens", r.prompt_tokens},
                        {"prompt_tokens_per_s", r.prompt_seconds > 0 ? double(r.prompt_tokens) / r.prompt_seconds : 0},
                        {"generation_tokens_per_s", r.gen_seconds > 0 ? double(r.ids.size()) / r.gen_seconds : 0},
                        {"stop_reason", r.stop_reason},
                        {"builtin_model", builtin}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    for (size_t i = 0; i < r.ids.size(); i++) std::printf("%s%d", i ? "," : "", r.ids[i]);
    std::printf("\n");
    print_summary(r);
  }
}
}  // namespace

void add_inspect_command(CLI::App& app, int& rc) {
  auto* cmd = app.add_subcommand("inspect", "Describe a checkpoint: layers, parameters, state and cache sizes");
  struct Opts {
    std::string dir;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();  // owned by the callback, alive while the app parses
  cmd->add_option("--model,-m", o->dir, "Checkpoint directory (only config.json is required). Default: built-in model");
  cmd->add_flag("--json", o->json, "Print the report as JSON");
  cmd->callback([o, &rc] {
    nlohmann::json r = o->dir.empty() ? inspect_config(builtin_config()) : inspect_model(o->dir);
    if (o->dir.empty()) r["model_dir"] = "(built-in model, random weights)";
    if (o->json)
      std::printf("%s\n", r.dump(2).c_str());
    else
      std::printf("%s", inspect_text(r).c_str());
    rc = 0;
  });
}

void add_generate_command(CLI::App& app, int& rc) {
  auto* cmd = app.add_subcommand("generate", "Generate from a text prompt (streamed) or from prompt token ids");
  struct Opts {
    ModelFlags f;
    SamplingFlags s;
    std::string ids, prompt, tokenizer;
    bool json = false, ignore_eos = false, chat = false;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(cmd, o->f);
  auto* ids = cmd->add_option("--prompt-ids", o->ids, "Prompt as token ids, e.g. 1,2,3 (prints the generated ids)");
  auto* text = cmd->add_option("--prompt,-p", o->prompt, "Prompt text (streams the generated text)");
  ids->excludes(text);
  cmd->add_flag("--chat", o->chat, "Wrap --prompt as one user turn of the chat template and stop at <|im_end|>");
  cmd->add_option("--tokenizer", o->tokenizer, "Directory with tiktoken.model (default: the model directory)");
  add_sampling_flags(cmd, o->s, 0.f);
  o->s.max_tokens = 32;
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at the end-of-sequence token");
  cmd->add_flag("--json", o->json, "With --prompt-ids: print a JSON object with the ids and speeds");
  cmd->callback([o, &rc] {
    const ModelFlags& f = o->f;
    if (o->ids.empty() == o->prompt.empty()) fail("generate: give --prompt TEXT or --prompt-ids IDS");
    GenerationRequest req;
    req.sampling = finish_sampling(o->s);
    req.max_tokens = o->s.max_tokens;
    req.stop_strings = o->s.stop;
    if (!o->ids.empty()) {
      req.prompt = parse_ids(o->ids, "--prompt-ids");
      auto engine = open_engine(f);
      Session s(*engine);
      if (!o->ignore_eos) req.stop_ids.push_back(int32_t(engine->model().config().eos_token_id));
      if (!req.stop_strings.empty()) fail("--stop needs a text --prompt (ids mode has no tokenizer)");
      GenerationResult r = generate(s, req, nullptr, prefill_progress(f.prefill_chunk));
      print_ids_result(r, o->json, engine->builtin());
      rc = 0;
      return;
    }
    auto engine = open_engine(f);
    Tokenizer tok = open_tokenizer(f.model, o->tokenizer);
    Session s(*engine);
    if (o->chat) {
      nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
      msgs.push_back({{"role", "user"}, {"content", o->prompt}});
      req.prompt = render_chat(tok, msgs, nullptr).ids;
      for (TokenId id : chat_stop_ids(tok)) req.stop_ids.push_back(id);
    } else {
      req.prompt = tok.encode(o->prompt, /*allow_special=*/false);
      if (req.prompt.empty()) fail("--prompt is empty");
    }
    if (!o->ignore_eos) req.stop_ids.push_back(int32_t(engine->model().config().eos_token_id));
    GenerationResult r = generate_text(
        s, tok, req,
        [](std::string_view t) {
          std::fwrite(t.data(), 1, t.size(), stdout);
          std::fflush(stdout);
        },
        prefill_progress(f.prefill_chunk));
    std::printf("\n");
    print_summary(r);
    rc = 0;
  });
}

void add_logits_command(CLI::App& app, int& rc) {
  auto* cmd = app.add_subcommand("logits", "Write the logits of every prompt position to a .npy file");
  struct Opts {
    ModelFlags f;
    std::string ids, out;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(cmd, o->f);
  cmd->add_option("--prompt-ids", o->ids, "Prompt as token ids, e.g. 1,2,3")->required();
  cmd->add_option("--out,-o", o->out, "Output .npy file: float32 [T, vocab]")->required();
  cmd->callback([o, &rc] {
    const ModelFlags& f = o->f;
    const std::string& out = o->out;
    std::vector<int32_t> prompt = parse_ids(o->ids, "--prompt-ids");
    auto engine = open_engine(f);
    Session s(*engine);
    std::vector<float> logits = s.feed_all_logits(prompt, prefill_progress(f.prefill_chunk));
    const int64_t V = engine->model().config().vocab_size;
    write_npy(out, DType::F32, {int64_t(prompt.size()), V}, logits.data());
    std::fprintf(stderr, "wrote %s: float32 [%zu, %lld]\n", out.c_str(), prompt.size(), (long long)V);
    rc = 0;
  });
}

}  // namespace kl::cli
