// Microbenchmark of the matmul kernels (not a test): every ISA table this CPU runs, 1 and 2..N
// threads, next to the machine's measured limits (read bandwidth, peak multiply-add rate).
//   decode:  n = 1 on BF16 [4096 x 2304] (18 MiB, fits in L3) and on a 256 MiB BF16 weight (well
//            beyond any L3, so from DRAM); bandwidth bound, judged in GB/s of weights streamed.
//   expert:  n = 16 on BF16 [1024 x 2304] (an MoE expert's share of a prompt chunk).
//   prompt:  n = 512 on BF16 [1024 x 2304]; compute bound, judged in GFLOP/s.
// Usage: kernels_bench [max_threads]   (default: every core this process may use)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/machine_limits.h"

namespace {

using namespace kl;

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

struct Variant {
  std::string name;
  Kernels k;
};

std::vector<Variant> variants(const CpuFeatures& cpu) {
  std::vector<Variant> out;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu.supports(isa)) continue;
    const Kernels& k = kernels_for(isa, cpu);
    out.push_back({isa_name(isa), k});
    if (isa != Isa::Scalar && k.matmul_rows_bf16_dot) {
      Kernels dot = k;
      dot.bf16_activations = true;
      out.push_back({std::string(isa_name(isa)) + "+bf16dot", dot});
    }
  }
  return out;
}

struct BenchWeight {
  Buffer<uint16_t> data;
  WeightView view;
  BenchWeight(int64_t rows, int64_t cols) : data(size_t(rows * cols)) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    for (size_t i = 0; i < data.size(); i++) data[i] = f32_to_bf16(d(rng));
    view = WeightView{data.data(), DType::BF16, rows, cols};
  }
};

void bench_matmul(const char* title, int64_t rows, int64_t cols, int64_t n,
                  const std::vector<Variant>& vs, const std::vector<int>& thread_counts) {
  BenchWeight w(rows, cols);
  Buffer<float> x(size_t(n * cols)), y(size_t(n * rows));
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (size_t i = 0; i < x.size(); i++) x[i] = d(rng);
  const double flops = 2.0 * double(rows) * double(cols) * double(n);
  const double bytes = double(w.view.rows) * double(w.view.row_bytes());
  std::printf("\n%s: BF16 [%lld x %lld] (%.1f MiB), n = %lld\n", title, (long long)rows,
              (long long)cols, bytes / (1 << 20), (long long)n);
  std::printf("  %-16s %7s %10s %10s %10s\n", "kernels", "threads", "ms", "GFLOP/s", "GB/s");
  for (const Variant& v : vs) {
    for (int nt : thread_counts) {
      ThreadPool pool(nt);
      Context ctx{&pool, &v.k};
      // The scalar twins take seconds on the prompt shape: one timed run is enough there.
      bool slow = v.k.isa == Isa::Scalar && n > 1;
      double t = best_time([&] { matmul(ctx, w.view, x.data(), n, y.data()); }, slow ? 1 : 5,
                           slow ? 0 : 0.5);
      std::printf("  %-16s %7d %10.3f %10.1f %10.1f\n", v.name.c_str(), nt, t * 1e3,
                  flops / t / 1e9, bytes / t / 1e9);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const CpuFeatures cpu = CpuFeatures::detect();
  const int max_threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : default_thread_count();
  std::vector<int> thread_counts = {1};
  if (max_threads > 1) thread_counts.push_back(max_threads);
  const std::vector<Variant> vs = variants(cpu);
  std::printf("cpu: %s; threads: 1%s\n", cpu.describe().c_str(),
              max_threads > 1 ? (" and " + std::to_string(max_threads)).c_str() : "");

  std::printf("\nmachine limits\n");
  for (int nt : thread_counts) {
    ThreadPool pool(nt);
    std::printf("  read bandwidth, 1 GiB buffer, %d thread(s): %.1f GB/s\n", nt,
                measure_read_bandwidth_gbs(pool, size_t(1) << 30));
  }
  for (const Variant& v : vs) {
    for (int nt : thread_counts) {
      ThreadPool pool(nt);
      std::printf("  peak %-16s (%s), %d thread(s): %.1f GFLOP/s\n", v.name.c_str(),
                  v.k.bf16_activations     ? "vdpbf16ps"
                  : v.k.isa == Isa::Scalar ? "mul+add"
                                           : "fp32 FMA",
                  nt, measure_peak_gflops(pool, v.k, DType::BF16));
    }
  }

  bench_matmul("decode, weight in L3", 4096, 2304, 1, vs, thread_counts);
  // 64 MiB still hits in this VM's caches (it streams faster than the 1 GiB read), so 256 MiB.
  bench_matmul("decode, weight beyond L3", 58240, 2304, 1, vs, thread_counts);
  bench_matmul("expert", 1024, 2304, 16, vs, thread_counts);
  bench_matmul("prompt", 1024, 2304, 512, vs, thread_counts);
  return 0;
}
