// Microbenchmark of the matmul kernels (not a test): every ISA table this CPU runs, 1 and 2..N
// threads, next to the machine's measured limits (read bandwidth, peak multiply-add rate).
//   decode:  n = 1 on BF16 [4096 x 2304] (18 MiB, fits in L3) and on a 256 MiB BF16 weight (well
//            beyond any L3, so from DRAM); bandwidth bound, judged in GB/s of weights streamed.
//   expert:  n = 16 on BF16 [1024 x 2304] (an MoE expert's share of a prompt chunk).
//   prompt:  n = 512 on BF16 [1024 x 2304]; compute bound, judged in GFLOP/s.
//   tiles:   the single-threaded tile GEMMs of the tiled MLA attention (kernels/tile_ops.h):
//            gemm_bf16 of every table (AVX-512 with and without vdpbf16ps) next to gemm_f32 on
//            the attention's shapes, in GFLOP/s and as a fraction of the one-core peak of the
//            instruction each is built on (fp32 FMA or vdpbf16ps); then the bf16 packers on
//            the same tiles, in ns per call.
// Usage: kernels_bench [max_threads]   (default: every core this process may use)
//        kernels_bench tiles           (the tile GEMMs only)
//        kernels_bench matmul [threads] (the compute-bound matmul shapes only, n = 16..512, on
//                                        the widest ISA: prompt, expert and MLP shapes)
//        kernels_bench stream [threads] [pairs] (decode's call shapes from memory and the read
//                                        probe, alternately: see bench_stream)
//        kernels_bench xalign [pairs]   (decode's matvec by x's alignment: see bench_x_alignment)
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
#include "kernels/tile_ops.h"

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

// ---- tile GEMMs ----

struct TileShape {
  const char* what;
  int64_t M, N, K;
  bool accumulate;  // C = row_scale·C + A·B, as the P·V products
};

struct TileGemm {
  std::string name;
  const Kernels* k;
  bool bf16;    // gemm_bf16, else gemm_f32
  double peak;  // GFLOP/s of its instruction on one core
};

void bench_tiles(const CpuFeatures& cpu) {
  ThreadPool one(1);
  std::printf("\ntile GEMMs, one thread\n");
  // The AVX-512 table of this CPU without AVX512_BF16: gemm_bf16 widens to fp32 and uses FMA.
  CpuFeatures no_bf16 = cpu;
  no_bf16.avx512_bf16 = false;
  std::vector<TileGemm> gs;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu.supports(isa)) continue;
    const Kernels& k = kernels_for(isa, cpu);
    const double fma = measure_peak_gflops(one, k, DType::F32);
    const std::string name = isa_name(isa);
    std::printf("  peak %-8s %-10s %.1f GFLOP/s\n", name.c_str(), isa == Isa::Scalar ? "mul+add" : "fp32 FMA", fma);
    gs.push_back({name + " f32", &k, false, fma});
    if (isa == Isa::Avx512 && cpu.avx512_bf16) {
      Kernels dot = k;
      dot.bf16_activations = true;
      const double dp = measure_peak_gflops(one, dot, DType::BF16);
      std::printf("  peak %-8s %-10s %.1f GFLOP/s\n", name.c_str(), "vdpbf16ps", dp);
      gs.push_back({name + " bf16 nodot", &kernels_for(isa, no_bf16), true, fma});
      gs.push_back({name + " bf16 dot", &k, true, dp});
    } else {
      gs.push_back({name + " bf16", &k, true, fma});
    }
  }

  const TileShape shapes[] = {
      {"prefill scores  S^T = K·Q^T", 128, 64, 128, false},
      {"prefill P·V     O += P·V", 64, 128, 128, true},
      {"decode scores   S^T = K·Q^T", 128, 32, 576, false},
      {"decode P·V      O += P·V", 32, 512, 128, true},
  };
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (const TileShape& sh : shapes) {
    const int64_t M = sh.M, N = sh.N, K = sh.K;
    // 64-byte aligned operands, as the attention's scratch.
    Buffer<float> a(static_cast<size_t>(M * K)), b(static_cast<size_t>(K * N)), c(static_cast<size_t>(M * N));
    Buffer<float> scale(static_cast<size_t>(M));
    for (size_t i = 0; i < a.size(); i++) a[i] = d(rng);
    for (size_t i = 0; i < b.size(); i++) b[i] = d(rng);
    for (size_t i = 0; i < scale.size(); i++) scale[i] = 0.5f;
    Buffer<uint16_t> a16(size_t(M * K)), b16(size_t(K * N));
    for (int64_t m = 0; m < M; m++)
      for (int64_t k = 0; k < K; k++) a16[size_t(m * K + k)] = f32_to_bf16(a[size_t(m * K + k)]);
    for (int64_t k = 0; k < K; k++)
      for (int64_t n = 0; n < N; n++) b16[size_t((k / 2) * 2 * N + 2 * n + k % 2)] = f32_to_bf16(b[size_t(k * N + n)]);
    GemmF32Args gf;
    gf.M = M, gf.N = N, gf.K = K, gf.a = a.data(), gf.a_rs = K, gf.a_cs = 1, gf.b = b.data(), gf.ldb = N;
    gf.c = c.data(), gf.ldc = N, gf.accumulate = sh.accumulate, gf.row_scale = sh.accumulate ? scale.data() : nullptr;
    GemmBf16Args gb;
    gb.M = M, gb.N = N, gb.K = K, gb.a = a16.data(), gb.lda = K, gb.b = b16.data(), gb.ldb = 2 * N;
    gb.c = c.data(), gb.ldc = N, gb.accumulate = sh.accumulate, gb.row_scale = gf.row_scale;
    const double flops = 2.0 * double(M) * double(N) * double(K);
    std::printf("\n%s: M %lld, N %lld, K %lld%s\n", sh.what, (long long)M, (long long)N, (long long)K,
                sh.accumulate ? ", accumulate with row_scale" : "");
    std::printf("  %-18s %10s %10s %8s\n", "gemm", "us/call", "GFLOP/s", "of peak");
    for (const TileGemm& g : gs) {
      // Calls back to back on the same operands (they stay in L1/L2, as in the attention).
      const int calls = g.k->isa == Isa::Scalar ? 4 : 64;
      const double t = best_time(
                           [&] {
                             for (int i = 0; i < calls; i++) g.bf16 ? g.k->gemm_bf16(gb) : g.k->gemm_f32(gf);
                           },
                           3, 0.3) /
                       calls;
      const double gflops = flops / t / 1e9;
      // The scalar twins are auto-vectorized by the compiler: no meaningful scalar peak.
      if (g.k->isa == Isa::Scalar)
        std::printf("  %-18s %10.2f %10.1f %8s\n", g.name.c_str(), t * 1e6, gflops, "-");
      else
        std::printf("  %-18s %10.2f %10.1f %7.0f%%\n", g.name.c_str(), t * 1e6, gflops, 100 * gflops / g.peak);
    }
  }

  // The packers on the same tiles: P (A of P·V) from scores stored keys x queries (transposed)
  // or queries x keys, Qᵀ (B of the scores) from row-major Q, and 128 bf16 cache rows of 512
  // pair-packed as the B of the decode P·V.
  std::printf("\npackers, one thread\n  %-34s", "");
  std::vector<const Kernels*> ks;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (cpu.supports(isa)) {
      ks.push_back(&kernels_for(isa, cpu));
      std::printf(" %14s", isa_name(isa));
    }
  std::printf("   (ns per call)\n");
  Buffer<float> src(128 * 576);  // 64-byte aligned, as the attention's scratch
  for (size_t i = 0; i < src.size(); i++) src[i] = d(rng);
  Buffer<uint16_t> src16(128 * 512), dst(128 * 1024);
  for (size_t i = 0; i < src16.size(); i++) src16[i] = f32_to_bf16(d(rng));
  struct Pack {
    const char* what;
    int kind;  // 0: rows, 1: pairs, 2: interleave
    int64_t rows, cols, rs, cs;
  };
  const Pack packs[] = {
      {"P [64 x 128] from P^T (rows, rs 1)", 0, 64, 128, 1, 64},
      {"P [64 x 128] row-major (rows)", 0, 64, 128, 128, 1},
      {"Q^T [128 x 64] from Q (pairs, rs 1)", 1, 128, 64, 1, 128},
      {"Q^T [576 x 32] from Q (pairs, rs 1)", 1, 576, 32, 1, 576},
      {"V [128 x 512] bf16 (interleave)", 2, 128, 512, 512, 1},
  };
  for (const Pack& pk : packs) {
    std::printf("  %-34s", pk.what);
    for (const Kernels* k : ks) {
      PackBf16Args p;
      p.src = src.data(), p.rows = pk.rows, p.cols = pk.cols, p.rs = pk.rs, p.cs = pk.cs, p.dst = dst.data();
      p.ldd = pk.kind == 0 ? pk.cols + pk.cols % 2 : 2 * pk.cols;
      InterleaveBf16Args q;
      q.src = src16.data(), q.rows = pk.rows, q.cols = pk.cols, q.rs = pk.rs, q.dst = dst.data(), q.ldd = 2 * pk.cols;
      const int calls = 64;
      const double t = best_time(
                           [&] {
                             for (int i = 0; i < calls; i++) {
                               if (pk.kind == 0) k->pack_bf16_rows(p);
                               else if (pk.kind == 1) k->pack_bf16_pairs(p);
                               else k->interleave_bf16_pairs(q);
                             }
                           },
                           3, 0.1) /
                       calls;
      std::printf(" %14.0f", t * 1e9);
    }
    std::printf("\n");
  }
}

}  // namespace

// The weight both streaming benchmarks read: 1 GiB of BF16 rows of the model's hidden size.
constexpr int64_t kStreamCols = 2304, kStreamRows = (int64_t(1) << 30) / (kStreamCols * 2);

// Decode's matmul calls streaming 1 GiB of BF16 weights from memory, next to the read probe,
// `pairs` times: on a host whose bandwidth moves from one second to the next, only readings
// taken seconds apart say whether decode reaches what the probe reads. Three call shapes over the
// same 1 GiB, each pass reading every byte once:
//   matvec:  one [233016 x 2304] call (an lm_head-sized stream);
//   moe:     decode MoE steps: a batch of 18 gate/up jobs [1024 x 2304], then a batch of 9 down
//            jobs [2304 x 1024] (8 routed experts + the shared one), over fresh experts each step;
//   dense:   the dense layer's down projections [2304 x 9216], one call each.
// Each line: the probe, then per ISA table and shape the best of 2 passes as a share of the probe
// (the tables run in a rotating order, so no table always follows the probe).
void bench_stream(const CpuFeatures& cpu, int threads, int pairs) {
  const int64_t cols = kStreamCols, rows = kStreamRows;
  BenchWeight w(rows, cols);
  const char* base = static_cast<const char*>(w.view.data);
  const size_t total = size_t(rows) * w.view.row_bytes();
  std::vector<float> x(size_t(9216), 0.5f), y(static_cast<size_t>(rows)), h(size_t(9 * 2 * 1024), 0.25f);
  ThreadPool pool(threads);
  std::vector<const Kernels*> ks;
  for (Isa isa : {Isa::Avx2, Isa::Avx512})
    if (cpu.supports(isa)) ks.push_back(&kernels_for(isa, cpu));
  if (ks.empty()) ks.push_back(&kernels_for(Isa::Scalar, cpu));

  // Views carved from the one buffer, in address order.
  const size_t expert_bytes = size_t(1024) * size_t(cols) * 2;
  std::vector<WeightView> experts, dense;
  for (size_t off = 0; off + expert_bytes <= total; off += expert_bytes)
    experts.push_back(WeightView{base + off, DType::BF16, 0, 0});
  const int64_t steps = int64_t(experts.size()) / 27;
  for (int64_t e = 0; e < steps * 27; e++) {
    const bool down = e % 27 >= 18;
    experts[size_t(e)].rows = down ? cols : 1024;
    experts[size_t(e)].cols = down ? 1024 : cols;
  }
  const size_t dense_bytes = size_t(cols) * 9216 * 2;
  for (size_t off = 0; off + dense_bytes <= total; off += dense_bytes)
    dense.push_back(WeightView{base + off, DType::BF16, cols, 9216});

  struct Shape {
    const char* name;
    double bytes;
  };
  const Shape shapes[3] = {{"matvec", double(total)},
                           {"moe", double(steps) * 27 * double(expert_bytes)},
                           {"dense", double(dense.size()) * double(dense_bytes)}};
  auto pass = [&](const Kernels& k, int shape) {
    Context ctx{&pool, &k};
    if (shape == 0) {
      matmul(ctx, w.view, x.data(), 1, y.data());
    } else if (shape == 1) {
      for (int64_t s = 0; s < steps; s++) {
        MatmulJob gu[18], dn[9];
        for (int j = 0; j < 18; j++) gu[j] = {&experts[size_t(s * 27 + j)], x.data(), 1, cols, h.data() + 1024 * j, 1024};
        for (int j = 0; j < 9; j++) dn[j] = {&experts[size_t(s * 27 + 18 + j)], h.data() + 1024 * j, 1, 1024, y.data() + cols * j, cols};
        matmul_batch(ctx, gu, 18);
        matmul_batch(ctx, dn, 9);
      }
    } else {
      for (const WeightView& d : dense) matmul(ctx, d, x.data(), 1, y.data());
    }
  };
  std::printf("decode calls over 1 GiB of BF16 weights, %d thread(s), best of 2 passes / read probe\n", threads);
  std::printf("  %4s %7s", "pair", "probe");
  for (const Kernels* k : ks)
    for (const Shape& sh : shapes) std::printf(" %14s", (std::string(isa_name(k->isa)) + " " + sh.name).c_str());
  std::printf("\n");
  for (const Kernels* k : ks)
    for (int s = 0; s < 3; s++) pass(*k, s);  // warm-up
  for (int p = 0; p < pairs; p++) {
    const double probe = measure_read_bandwidth_gbs(pool, size_t(1) << 30);
    std::vector<double> gbs(ks.size() * 3);
    for (size_t i = 0; i < ks.size(); i++) {
      const size_t ki = (i + size_t(p)) % ks.size();
      for (int s = 0; s < 3; s++) {
        double best = 0;
        for (int r = 0; r < 2; r++) {
          const double t0 = now_s();
          pass(*ks[ki], s);
          best = std::max(best, shapes[s].bytes / (now_s() - t0) / 1e9);
        }
        gbs[ki * 3 + size_t(s)] = best;
      }
    }
    std::printf("  %4d %7.1f", p, probe);
    for (double g : gbs) std::printf(" %5.1f (%4.0f%%)", g, 100 * g / probe);
    std::printf("\n");
    std::fflush(stdout);
  }
}

// Decode's matvec (the 1 GiB BF16 weight of bench_stream) with x at offsets of 0-28, 32 and 48
// bytes from a 64-byte boundary, on every ISA table, next to the read probe, `pairs` times: the
// AVX-512 decode kernels of cores that run 512-bit operations as two halves read x from a copy
// when it sits on a 32-byte boundary (matmul_avx512.cpp); this shows why, and that the copy
// keeps up. GB/s per offset.
void bench_x_alignment(const CpuFeatures& cpu, int threads, int pairs) {
  const int64_t cols = kStreamCols, rows = kStreamRows;
  BenchWeight w(rows, cols);
  Buffer<float> xb(size_t(cols + 64));
  for (size_t i = 0; i < xb.size(); i++) xb[i] = 0.5f;
  std::vector<float> y(static_cast<size_t>(rows));
  ThreadPool pool(threads);
  const double bytes = double(rows) * double(w.view.row_bytes());
  const int offsets[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 12};  // floats
  std::vector<std::pair<std::string, const Kernels*>> ks;
  for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Neon})
    if (cpu.supports(isa)) ks.push_back({isa_name(isa), &kernels_for(isa, cpu)});
  Kernels whole;  // the AVX-512 table of a core that runs 512-bit operations whole
  if (cpu.supports(Isa::Avx512) && cpu.avx512_halves) {
    CpuFeatures c = cpu;
    c.avx512_halves = false;
    whole = kernels_for(Isa::Avx512, c);
    ks.push_back({"avx512-whole", &whole});
  }
  std::printf("decode matvec, BF16 [%lld x %lld] (1 GiB), %d thread(s), GB/s by x's offset from a 64-byte boundary\n",
              (long long)rows, (long long)cols, threads);
  std::printf("  %-13s %6s", "kernels", "probe");
  for (int o : offsets) std::printf(" %5dB", o * 4);
  std::printf("\n");
  for (int p = 0; p < pairs; p++) {
    for (const auto& [name, k] : ks) {
      Context ctx{&pool, k};
      const double probe = measure_read_bandwidth_gbs(pool, size_t(1) << 30);
      std::printf("  %-13s %6.1f", name.c_str(), probe);
      for (int o : offsets) {
        const double t0 = now_s();
        matmul(ctx, w.view, xb.data() + o, 1, y.data());
        std::printf(" %6.1f", bytes / (now_s() - t0) / 1e9);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
}

int main(int argc, char** argv) {
  const CpuFeatures cpu = CpuFeatures::detect();
  if (argc > 1 && std::string(argv[1]) == "stream") {
    const int nt = argc > 2 ? std::max(1, std::atoi(argv[2])) : default_thread_count();
    const int pairs = argc > 3 ? std::max(1, std::atoi(argv[3])) : 10;
    bench_stream(cpu, nt, pairs);
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "xalign") {
    const int pairs = argc > 2 ? std::max(1, std::atoi(argv[2])) : 10;
    bench_x_alignment(cpu, default_thread_count(), pairs);
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "tiles") {
    std::printf("cpu: %s\n", cpu.describe().c_str());
    bench_tiles(cpu);
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "matmul") {
    const int nt = argc > 2 ? std::max(1, std::atoi(argv[2])) : default_thread_count();
    std::vector<int> tc = {1};
    if (nt > 1) tc.push_back(nt);
    std::vector<Variant> fast;
    for (const Variant& v : variants(cpu))
      if (v.k.isa == Isa::Avx512 || (v.k.isa == Isa::Avx2 && !cpu.supports(Isa::Avx512)))
        fast.push_back(v);
    std::printf("cpu: %s\n", cpu.describe().c_str());
    bench_matmul("expert", 1024, 2304, 16, fast, tc);
    bench_matmul("expert", 1024, 2304, 32, fast, tc);
    bench_matmul("expert", 1024, 2304, 64, fast, tc);
    bench_matmul("expert", 1024, 2304, 128, fast, tc);
    bench_matmul("attention out", 2304, 1024, 64, fast, tc);
    bench_matmul("dense MLP down", 2304, 9216, 64, fast, tc);
    bench_matmul("prompt", 1024, 2304, 512, fast, tc);
    bench_matmul("dense MLP up", 9216, 2304, 512, fast, tc);
    bench_matmul("dense MLP down", 2304, 9216, 512, fast, tc);
    return 0;
  }
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
  bench_tiles(cpu);
  return 0;
}
