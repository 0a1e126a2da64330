// kimi-linear: one binary, one subcommand per job.
#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{
      "kimi-linear: run Moonshot AI's Kimi Linear models (KimiLinearForCausalLM) on the CPU.\n"
      "Without --model, commands use a small built-in model with random weights."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kimi-linear 0.1.0");
  int rc = 0;
  kl::cli::add_inspect_command(app, rc);
  kl::cli::add_generate_command(app, rc);
  kl::cli::add_logits_command(app, rc);
  kl::cli::add_tokenize_commands(app, rc);
  kl::cli::add_chat_command(app, rc);
  kl::cli::add_bench_command(app, rc);
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) {
      known |= sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "error: unknown command '%s'. Commands: %s (see --help)\n", argv[1], names.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const kl::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return rc;
}
