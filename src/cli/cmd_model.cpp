// inspect, generate, logits: the commands that look at or run a model on token ids.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "format/npy.h"
#include "model/synthetic.h"
#include "runtime/inspect.h"

namespace kl::cli {

namespace {
// Progress of long prompts on stderr, only when it is a terminal or asked for.
Progress prefill_progress(int64_t chunk) {
  return [chunk](int64_t done, int64_t total) {
    if (total <= chunk) return;
    std::fprintf(stderr, "\rprefill %lld/%lld tokens", (long long)done, (long long)total);
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
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
  auto* cmd = app.add_subcommand("generate", "Greedy generation from prompt token ids");
  struct Opts {
    ModelFlags f;
    std::string ids;
    int64_t max_tokens = 32;
    bool json = false, ignore_eos = false;
  };
  auto o = std::make_shared<Opts>();
  add_model_flags(cmd, o->f);
  cmd->add_option("--prompt-ids", o->ids, "Prompt as token ids, e.g. 1,2,3")->required();
  cmd->add_option("--max-tokens,-n", o->max_tokens, "Tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at the end-of-sequence token");
  cmd->add_flag("--json", o->json, "Print a JSON object with the ids and speeds");
  cmd->callback([o, &rc] {
    const ModelFlags& f = o->f;
    const bool json = o->json;
    std::vector<int32_t> prompt = parse_ids(o->ids, "--prompt-ids");
    auto engine = open_engine(f);
    Session s(*engine);
    std::vector<int32_t> stop;
    if (!o->ignore_eos) stop.push_back(int32_t(engine->model().config().eos_token_id));
    GenerateResult r = generate_greedy(s, prompt, o->max_tokens, stop, nullptr, prefill_progress(f.prefill_chunk));
    const double pp = r.prompt_seconds > 0 ? double(r.prompt_tokens) / r.prompt_seconds : 0;
    // The first generated token comes from the prompt pass; the rest are decode steps.
    const int64_t steps = int64_t(r.ids.size()) - 1;
    const double tg = steps > 0 && r.gen_seconds > 0 ? double(steps) / r.gen_seconds : 0;
    if (json) {
      nlohmann::json j = {{"generated_ids", r.ids},
                          {"prompt_tokens", r.prompt_tokens},
                          {"prompt_tokens_per_s", pp},
                          {"generation_tokens_per_s", tg},
                          {"stop_reason", r.stop_reason},
                          {"builtin_model", engine->builtin()}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      for (size_t i = 0; i < r.ids.size(); i++) std::printf("%s%d", i ? "," : "", r.ids[i]);
      std::printf("\n");
      std::fprintf(stderr, "%lld prompt tokens at %.1f tok/s; %zu generated at %.1f tok/s; stop: %s\n",
                   (long long)r.prompt_tokens, pp, r.ids.size(), tg, r.stop_reason.c_str());
    }
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
