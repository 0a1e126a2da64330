#include "cli/common.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "core/error.h"

namespace kl::cli {

void add_model_flags(CLI::App* cmd, ModelFlags& f) {
  cmd->add_option("--model,-m", f.model,
                  "Kimi Linear checkpoint directory (config.json + model.safetensors or shards). "
                  "Default: the built-in model with random weights");
  cmd->add_option("--router-weights", f.router,
                  "MoE routing weights: 'unbiased' (vLLM/llama.cpp semantics) or 'biased' (the released "
                  "modeling_kimi.py)")
      ->check(CLI::IsMember({"unbiased", "biased"}));
  add_cache_type_flag(cmd, f.cache_type);
  cmd->add_option("--threads,-t", f.threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--isa", f.isa,
                  "Kernel set: scalar, avx2, avx512 (x86-64) or neon (AArch64) (default: the best this CPU runs)")
      ->check(CLI::IsMember({"scalar", "avx2", "avx512", "neon"}));
  cmd->add_option("--prefill-chunk", f.prefill_chunk, "Prompt tokens per forward pass (bounds activation memory)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--no-mmap", f.no_mmap,
                "Read the weights into memory (on 2 MiB pages where the system allows) instead of mapping the "
                "files: they stay resident whatever the page cache does, at the cost of a slower start and the "
                "whole model in RAM");
}

void add_cache_type_flag(CLI::App* cmd, std::string& cache_type) {
  cmd->add_option("--cache-type", cache_type,
                  "MLA latent cache storage: 'auto' (the default: f32 for f32 weights, bf16 for bf16/f16 "
                  "weights, as the reference runs them), 'f32' (exact) or 'bf16' (half the memory; attention "
                  "then multiplies bf16 values with fp32 sums, as vLLM's bf16 cache does)")
      ->check(CLI::IsMember({"auto", "f32", "bf16"}));
}

std::optional<DType> cache_dtype_of(const std::string& cache_type) {
  if (cache_type == "bf16") return DType::BF16;
  if (cache_type == "f32") return DType::F32;
  return std::nullopt;  // auto
}

std::unique_ptr<Engine> open_engine(const ModelFlags& f) {
  ModelSource src;
  src.dir = f.model;
  src.options.router_weights = f.router == "biased" ? RouterWeights::Biased : RouterWeights::Unbiased;
  src.options.cache_dtype = cache_dtype_of(f.cache_type);
  src.options.weights_access = f.no_mmap ? FileAccess::Read : FileAccess::Map;
  EngineOptions eo;
  eo.threads = f.threads;
  eo.prefill_chunk = f.prefill_chunk;
  if (!f.isa.empty()) {
    Isa isa;
    isa_from_name(f.isa, &isa);
    eo.isa = isa;
  }
  if (src.builtin())
    std::fprintf(stderr,
                 "note: no --model given, so this runs the built-in model: real Kimi Linear layer structure, "
                 "RANDOM weights.\n      Its output is meaningless. To run a real model: --model DIR, where DIR "
                 "holds config.json and\n      model.safetensors (or model.safetensors.index.json with its shards), "
                 "e.g. Kimi-Linear-48B-A3B-Instruct.\n");
  else
    std::fprintf(stderr, "loading %s%s ...\n", f.model.c_str(), f.no_mmap ? " (reading the weights into memory)" : "");
  const auto t0 = std::chrono::steady_clock::now();
  auto e = std::make_unique<Engine>(src, eo);
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "model: %s (ready in %.2f s%s)\n", e->describe().c_str(), sec,
               e->builtin() ? ""
               : f.no_mmap  ? "; weights read into memory"
                            : "; weights are memory-mapped and read on first use");
  if (!e->model().extra_tensors().empty())
    std::fprintf(stderr, "warning: %zu tensor(s) in the checkpoint are not used by the model (first: %s)\n",
                 e->model().extra_tensors().size(), e->model().extra_tensors()[0].c_str());
  return e;
}

Tokenizer open_tokenizer(const std::string& model_dir, const std::string& tokenizer_dir) {
  namespace fs = std::filesystem;
  if (!tokenizer_dir.empty()) return Tokenizer::load(tokenizer_dir);
  if (model_dir.empty()) return Tokenizer::builtin();
  if (!fs::exists(fs::path(model_dir) / "tiktoken.model"))
    fail(model_dir, " has no tiktoken.model; point --tokenizer at a directory that holds the Kimi tokenizer files");
  if (fs::exists(fs::path(model_dir) / "chat_template.jinja"))
    std::fprintf(stderr, "note: %s/chat_template.jinja is present; the native Kimi chat renderer is used\n",
                 model_dir.c_str());
  return Tokenizer::load(model_dir);
}

Progress prefill_progress(int64_t chunk) {
  return [chunk](int64_t done, int64_t total) {
    if (total <= chunk) return;
    std::fprintf(stderr, "\rprefill %lld/%lld tokens", (long long)done, (long long)total);
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

void print_summary(const GenerationResult& r) {
  const double pp = r.prompt_seconds > 0 ? double(r.prompt_tokens) / r.prompt_seconds : 0;
  const double tg = !r.ids.empty() && r.gen_seconds > 0 ? double(r.ids.size()) / r.gen_seconds : 0;
  std::fprintf(stderr, "[%lld prompt tokens, %.1f tok/s | %zu generated, %.1f tok/s | stop: %s]\n",
               (long long)r.prompt_tokens, pp, r.ids.size(), tg, r.stop_reason.c_str());
}

std::vector<int32_t> parse_ids(const std::string& s, const char* flag) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string tok = s.substr(i, j - i);
    while (!tok.empty() && tok.front() == ' ') tok.erase(tok.begin());
    while (!tok.empty() && tok.back() == ' ') tok.pop_back();
    if (tok.empty()) fail(flag, ": empty token id at position ", ids.size() + 1, " in '", s, "'");
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(tok, &used);
    } catch (...) {
      used = 0;
    }
    if (used != tok.size() || v < 0 || v > 0x7fffffff)
      fail(flag, ": '", tok, "' is not a token id (expected non-negative integers separated by commas)");
    ids.push_back(int32_t(v));
    i = j + 1;
  }
  return ids;
}

}  // namespace kl::cli
