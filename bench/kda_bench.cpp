// Microbenchmark of the KDA delta-rule kernels (not a test): every ISA table this CPU runs, 1 and
// N threads, heads spread over the pool as model/kda.cpp does. Model shape: 32 heads of
// K = V = 128 (a 2 MiB fp32 state per layer and sequence).
//   decode:  T = 1 on one layer's state (stays in L2/L3), and on 20 layers' states in turn
//            (40 MiB, as a decode step of the whole model sees it); judged in GB/s of state
//            read + written.
//   prefill: T = 512, chunked (what the model runs for prompts) and recurrent (what it runs for
//            runs of <= 64 tokens), in tokens/s and ms per layer.
// Usage: kda_bench [max_threads]   (default: every core this process may use)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/kda.h"
#include "kernels/kernels.h"

namespace {

using namespace kl;

constexpr int64_t kH = 32, kD = 128, kLayers = 20;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best time of repeated runs: at least `min_reps`, until `min_s` seconds have passed.
template <class F>
double best_time(F&& f, int min_reps, double min_s) {
  f();  // warm-up: page faults, caches, clocks
  double best = 1e30, start = now_s();
  for (int rep = 0; rep < min_reps || now_s() - start < min_s; rep++) {
    double t0 = now_s();
    f();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

// Inputs of T tokens for all heads, shaped like the model's (normalized q, k; decay g <= 0).
struct Inputs {
  int64_t T;
  Buffer<float> q, k, v, g, beta, out;
  explicit Inputs(int64_t T_)
      : T(T_), q(size_t(T * kH * kD)), k(size_t(T * kH * kD)), v(size_t(T * kH * kD)), g(size_t(T * kH * kD)),
        beta(size_t(T * kH)), out(size_t(T * kH * kD)) {
    std::mt19937 rng(1);
    std::normal_distribution<float> n01(0.f, 1.f);
    for (int64_t r = 0; r < T * kH; r++) {
      float nq = 0, nk = 0;
      for (int64_t d = 0; d < kD; d++) {
        const size_t i = size_t(r * kD + d);
        q[i] = n01(rng), k[i] = n01(rng), v[i] = n01(rng);
        g[i] = -std::log1p(std::exp(n01(rng) - 3.f));
        nq += q[i] * q[i], nk += k[i] * k[i];
      }
      for (int64_t d = 0; d < kD; d++) {
        q[size_t(r * kD + d)] /= std::sqrt(nq * float(kD));
        k[size_t(r * kD + d)] /= std::sqrt(nk);
      }
      beta[size_t(r)] = 0.5f;
    }
  }
  KdaSeqArgs args(float* state) {
    KdaSeqArgs a;
    a.T = T, a.H = kH, a.K = kD, a.V = kD;
    a.q = q.data(), a.k = k.data(), a.v = v.data(), a.g = g.data(), a.beta = beta.data();
    a.ld_qkg = kH * kD, a.ld_v = kH * kD;
    a.state = state, a.out = out.data();
    return a;
  }
};

void run_heads(ThreadPool& pool, const Kernels& k, const KdaSeqArgs& a, bool chunked, Buffer<float>& scratch,
               size_t scratch_per_thread) {
  pool.parallel_for(kH, [&](int64_t h, int thread) {
    if (chunked)
      k.kda_chunk_head(a, h, scratch.data() + size_t(thread) * scratch_per_thread);
    else
      k.kda_recurrent_head(a, h);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const CpuFeatures cpu = CpuFeatures::detect();
  const int max_threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : default_thread_count();
  std::vector<int> thread_counts = {1};
  if (max_threads > 1) thread_counts.push_back(max_threads);
  std::vector<Isa> isas;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon})
    if (cpu.supports(isa)) isas.push_back(isa);
  std::printf("cpu: %s; %lld heads of K = V = %lld; threads: 1 and %d\n", cpu.describe().c_str(), (long long)kH,
              (long long)kD, max_threads);

  const size_t state_floats = size_t(kH * kD * kD);
  const double state_bytes = double(state_floats) * 4;
  const size_t scratch_per_thread = kda_chunk_scratch_floats(kD, kD);
  Buffer<float> scratch(scratch_per_thread * size_t(max_threads));
  std::vector<Buffer<float>> states(kLayers, Buffer<float>(state_floats));
  Inputs one(1), prompt(512);

  std::printf("\ndecode (T = 1): one layer's state (2 MiB), and 20 layers' states in turn (40 MiB)\n");
  std::printf("  %-8s %7s %12s %10s %14s %10s\n", "kernels", "threads", "us/layer", "GB/s", "us/20 layers",
              "GB/s");
  for (Isa isa : isas) {
    const Kernels& k = kernels_for(isa, cpu);
    for (int nt : thread_counts) {
      ThreadPool pool(nt);
      const KdaSeqArgs a = one.args(states[0].data());
      const double t1 = best_time([&] { run_heads(pool, k, a, false, scratch, scratch_per_thread); }, 20, 0.3);
      const double t20 = best_time(
          [&] {
            for (auto& s : states) run_heads(pool, k, one.args(s.data()), false, scratch, scratch_per_thread);
          },
          5, 0.3);
      std::printf("  %-8s %7d %12.1f %10.1f %14.1f %10.1f\n", isa_name(isa), nt, t1 * 1e6, 2 * state_bytes / t1 / 1e9,
                  t20 * 1e6, 2 * kLayers * state_bytes / t20 / 1e9);
    }
  }

  std::printf("\nprefill (T = 512), one layer\n");
  std::printf("  %-8s %7s %-10s %10s %12s\n", "kernels", "threads", "algorithm", "ms", "tokens/s");
  for (Isa isa : isas) {
    const Kernels& k = kernels_for(isa, cpu);
    for (int nt : thread_counts) {
      ThreadPool pool(nt);
      for (bool chunked : {true, false}) {
        const KdaSeqArgs a = prompt.args(states[0].data());
        // The scalar twins take about a second here: one timed run is enough.
        const bool slow = isa == Isa::Scalar;
        const double t =
            best_time([&] { run_heads(pool, k, a, chunked, scratch, scratch_per_thread); }, slow ? 1 : 5, slow ? 0 : 0.5);
        std::printf("  %-8s %7d %-10s %10.2f %12.0f\n", isa_name(isa), nt, chunked ? "chunked" : "recurrent", t * 1e3,
                    double(prompt.T) / t);
      }
    }
  }
  return 0;
}
