// Options shared by the commands that run a model.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace kl::cli {

struct ModelFlags {
  std::string model;
  std::string router = "unbiased";
  int threads = 0;
  std::string isa;
  int64_t prefill_chunk = 512;
};

void add_model_flags(CLI::App* cmd, ModelFlags& f);
// Loads the model named by the flags (or the built-in one, with a note on stderr).
std::unique_ptr<Engine> open_engine(const ModelFlags& f);
// "1,2,3" -> ids; a clear error for anything else.
std::vector<int32_t> parse_ids(const std::string& s, const char* flag);

}  // namespace kl::cli
