// bench: pp / tg tokens per second at several context depths, as a fraction of the machine's
// measured limits.
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "model/synthetic.h"
#include "runtime/bench.h"

namespace kl::cli {

namespace {
std::vector<int64_t> parse_list(const std::string& s, const char* flag, int64_t min) {
  std::vector<int64_t> out;
  for (int32_t v : parse_ids(s, flag)) {
    if (v < min) fail(flag, ": values must be >= ", min);
    out.push_back(v);
  }
  return out;
}
}  // namespace

void add_bench_command(CLI::App& app, int& rc) {
  auto* cmd = app.add_subcommand("bench", "Measure prompt (pp) and generation (tg) speed against the machine's limits");
  struct Opts {
    ModelFlags f;
    bool synthetic = false, json = false, bf16_act = false, no_limits = false;
    int64_t layers = 4, n_prompt = 512, n_gen = 128, reps = 1;
    std::string depths = "0", threads, save, format = "bf16";
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model,-m", o->f.model, "Checkpoint directory");
  cmd->add_flag("--synthetic", o->synthetic,
                "Build in memory a model with the real Kimi-Linear-48B-A3B per-layer geometry and random weights");
  cmd->add_option("--layers", o->layers, "Layers of the synthetic model (default 4: KDA, KDA, KDA, MLA)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--format", o->format, "Weight format of the synthetic model")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd->add_option("--save", o->save, "With --synthetic: write the model as an HF directory (config.json + "
                                     "model.safetensors) and exit, so other engines can run the same weights");
  cmd->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens per pp test (0: skip)")->check(CLI::NonNegativeNumber);
  cmd->add_option("-n,--n-gen", o->n_gen, "Generated tokens per tg test (0: skip)")->check(CLI::NonNegativeNumber);
  cmd->add_option("-d,--depth", o->depths, "Context depths, comma-separated (the context is filled first, untimed)");
  cmd->add_option("-t,--threads", o->threads, "Thread counts, comma-separated (default: all cores)");
  cmd->add_option("-r,--repetitions", o->reps, "Runs per test; the best is reported")->check(CLI::PositiveNumber);
  cmd->add_option("--isa", o->f.isa, "Kernel set: scalar, avx2, avx512 (x86-64) or neon (AArch64)")
      ->check(CLI::IsMember({"scalar", "avx2", "avx512", "neon"}));
  cmd->add_option("--prefill-chunk", o->f.prefill_chunk, "Prompt tokens per forward pass")->check(CLI::PositiveNumber);
  add_cache_type_flag(cmd, o->f.cache_type);
  cmd->add_flag("--no-mmap", o->f.no_mmap, "With --model: read the weights into memory (2 MiB pages) instead of mapping them");
  cmd->add_flag("--bf16-activations", o->bf16_act, "Round activations to bf16 for BF16 weights (AVX512_BF16 dot)");
  cmd->add_flag("--no-limits", o->no_limits, "Skip measuring bandwidth and peak FLOPs");
  cmd->add_flag("--json", o->json, "Print a JSON array, one object per test");
  cmd->callback([o, &rc] {
    if (o->synthetic == !o->f.model.empty()) fail("bench: give either --model DIR or --synthetic");
    if (!o->save.empty() && !o->synthetic) fail("bench: --save needs --synthetic");
    EngineOptions eo;
    eo.prefill_chunk = o->f.prefill_chunk;
    eo.bf16_activations = o->bf16_act;
    if (!o->f.isa.empty()) {
      Isa isa;
      isa_from_name(o->f.isa, &isa);
      eo.isa = isa;
    }
    std::vector<int64_t> threads = o->threads.empty() ? std::vector<int64_t>{default_thread_count()}
                                                      : parse_list(o->threads, "--threads", 1);
    eo.threads = int(threads[0]);
    std::unique_ptr<Engine> e;
    std::string model_name;
    if (o->synthetic) {
      const DType fmt = o->format == "f32" ? DType::F32 : o->format == "f16" ? DType::F16 : DType::BF16;
      KimiConfig c = synthetic_48b_config(o->layers);
      std::fprintf(stderr, "building the synthetic %lld-layer model (48B-A3B geometry, random %s weights) ...\n",
                   (long long)o->layers, o->format.c_str());
      ThreadPool pool(default_thread_count());
      SyntheticWeights w = make_synthetic_weights(c, fmt, 42, &pool);
      if (!o->save.empty()) {
        save_hf_directory(o->save, c, w);
        std::fprintf(stderr, "wrote %s (config.json + model.safetensors)\n", o->save.c_str());
        rc = 0;
        return;
      }
      ModelOptions mo;
      mo.cache_dtype = cache_dtype_of(o->f.cache_type);
      e = std::make_unique<Engine>(Model::from_memory(c, w.storage, w.tensors, mo), eo);
      model_name = "synthetic-48B-geometry-" + std::to_string(o->layers) + "L " + o->format;
    } else {
      ModelSource src;
      src.dir = o->f.model;
      src.options.cache_dtype = cache_dtype_of(o->f.cache_type);
      src.options.weights_access = o->f.no_mmap ? FileAccess::Read : FileAccess::Map;
      e = std::make_unique<Engine>(src, eo);
      model_name = o->f.model;
    }
    if (e->model().cache_dtype() == DType::BF16) model_name += " cache bf16";
    std::fprintf(stderr, "model: %s\n", e->describe().c_str());
    BenchOptions bo;
    bo.n_prompt = o->n_prompt;
    bo.n_gen = o->n_gen;
    bo.depths = parse_list(o->depths, "--depth", 0);
    bo.repetitions = o->reps;
    bo.measure_limits = !o->no_limits;
    nlohmann::json all = nlohmann::json::array();
    bool header = false;
    for (int64_t t : threads) {
      e->set_threads(int(t));
      MachineLimits lim;
      if (!o->no_limits) {
        std::fprintf(stderr, "measuring memory bandwidth and peak matmul throughput on %lld thread(s) ...\n", (long long)t);
        lim = measure_limits(*e, bo);
        std::fprintf(stderr, "limits: read bandwidth %.1f GB/s, peak %s %.1f GFLOP/s\n", lim.bandwidth_gbs,
                     lim.peak_kind.c_str(), lim.peak_gflops);
      }
      nlohmann::json rows = run_bench(*e, bo, lim, [&](const nlohmann::json& j) {
        if (o->json) return;
        if (!header) {
          // "vs d0": this depth / the first depth listed, the median over repetitions: for tg
          // with several depths from the runs that interleave the depths' steps, else from the
          // two runs of the same repetition (see run_bench).
          const std::string vs = "vs d" + std::to_string(bo.depths.front());
          std::printf("| %-44s | %7s | %7s | %8s | %12s | %10s | %14s | %9s | %10s |\n", "model", "threads", "test",
                      "depth", "t/s", "% of limit", "limit", vs.c_str(), "peak RSS");
          std::printf("| %s | ------: | ------: | -------: | -----------: | ---------: | -------------: | --------: | ---------: |\n",
                      std::string(44, '-').c_str());
          header = true;
        }
        // The limit the fraction is taken of: the bandwidth a tg run had (run_bench), the peak for pp.
        char limit[32] = "-";  // --no-limits
        const double bw = j.contains("bandwidth_gbs_at_test") ? j["bandwidth_gbs_at_test"].get<double>() : 0;
        if (bw > 0)
          std::snprintf(limit, sizeof limit, "%.1f GB/s", bw);
        else if (!j.contains("bandwidth_gbs_at_test") && lim.peak_gflops > 0)
          std::snprintf(limit, sizeof limit, "%.1f GFLOP/s", lim.peak_gflops);
        char frac[16] = "-";
        if (std::strcmp(limit, "-") != 0)
          std::snprintf(frac, sizeof frac, "%.1f%%", 100 * j["fraction_of_limit"].get<double>());
        std::printf("| %-44s | %7d | %7s | %8lld | %12.2f | %10s | %14s | %8.1f%% | %6.2f GiB |\n",
                    model_name.c_str(), j["threads"].get<int>(), j["test"].get<std::string>().c_str(),
                    (long long)j["depth"].get<int64_t>(), j["tokens_per_s"].get<double>(), frac, limit,
                    100 * j.value("vs_first_depth_interleaved", j["vs_first_depth_paired"].get<double>()),
                    double(j["peak_rss_bytes"].get<int64_t>()) / (1 << 30));
        std::fflush(stdout);
      });
      for (auto& r : rows) {
        r["bandwidth_gbs"] = r.contains("bandwidth_gbs_at_test") ? r["bandwidth_gbs_at_test"].get<double>() : lim.bandwidth_gbs;
        r["peak_gflops"] = lim.peak_gflops;
        all.push_back(r);
      }
    }
    if (o->json) std::printf("%s\n", all.dump(2).c_str());
    rc = 0;
  });
}

}  // namespace kl::cli
