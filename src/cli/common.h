// Options shared by the commands that run a model.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"

namespace kl::cli {

struct ModelFlags {
  std::string model;
  std::string router = "unbiased";
  std::string cache_type = "auto";
  int threads = 0;
  std::string isa;
  int64_t prefill_chunk = 512;
  bool no_mmap = false;
};

void add_model_flags(CLI::App* cmd, ModelFlags& f);
// The --cache-type option (also used by bench) and its value as a DType.
void add_cache_type_flag(CLI::App* cmd, std::string& cache_type);
std::optional<DType> cache_dtype_of(const std::string& cache_type);  // "auto": unset
// Loads the model named by the flags (or the built-in one, with a note on stderr).
std::unique_ptr<Engine> open_engine(const ModelFlags& f);
// The tokenizer for a model: --tokenizer DIR, else the model directory, else (built-in model)
// the Kimi tokenizer compiled into the binary.
Tokenizer open_tokenizer(const std::string& model_dir, const std::string& tokenizer_dir);
// Progress of long prompts on stderr.
Progress prefill_progress(int64_t chunk);
// "[12 prompt tokens, 310.2 tok/s | 32 generated, 25.1 tok/s | stop: max_tokens]" on stderr.
void print_summary(const GenerationResult& r);
// "1,2,3" -> ids; a clear error for anything else.
std::vector<int32_t> parse_ids(const std::string& s, const char* flag);

}  // namespace kl::cli
