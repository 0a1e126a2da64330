// Each subcommand lives in its own cmd_*.cpp and registers itself on the CLI11 app. A command's
// callback returns the process exit code through `int& rc`.
#pragma once
#include <CLI/CLI.hpp>

namespace kl::cli {

void add_inspect_command(CLI::App& app, int& rc);
void add_generate_command(CLI::App& app, int& rc);
void add_logits_command(CLI::App& app, int& rc);
void add_tokenize_commands(CLI::App& app, int& rc);  // tokenize, detokenize
void add_bench_command(CLI::App& app, int& rc);
void add_chat_command(CLI::App& app, int& rc);

}  // namespace kl::cli
