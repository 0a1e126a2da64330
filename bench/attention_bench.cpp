// Microbenchmark of the MLA attention kernels (not a test), real Kimi-Linear geometry: 32 heads,
// latent c 512, shared key part r 64, nope 128, v 128 (cache row 576 floats), BF16 kv_b_proj.
//   decode:  one query at context 0, 4096, 16384: ms per token per MLA layer
//   prefill: a 512-query chunk after ctx0 = 0 and 16384 cached tokens: ms per chunk per layer
// "before" is the previous kernel (one (query, head) pair per task, dot/axpy, one pass over the
// cache per head; kept as latent_attention_absorbed_reference), "absorbed" and "decompressed"
// the tiled kernels; "auto" marks the form the model picks (mla_cheaper_form). Decode also
// shows the per-token work around the kernel in the absorbed form (query absorption W_UKᵀq and
// W_UV on the output) as the previous scalar loop did it and as mla.cpp does it now.
//   decode-16k: only the absorbed decode at context 16385, over an fp32 and a bf16 cache, a few
//            seconds each for 1 .. max_threads threads, the caches evicted before each call (as
//            the model's weights do between a layer's calls), as ms per token and as a fraction
//            of the peak of the instruction it runs on (fp32 FMA; bf16 dot where the CPU has
//            it), measured in the same run (for profiling the kernel).
// Usage: attention_bench [max_threads] [decode | decode-16k] [isa]
//        (default 2 threads; "decode": skip the prefill; isa: a kernel set this CPU runs, e.g.
//        avx2, default the best)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "kernels/machine_limits.h"
#include "kernels/tile_ops.h"
#include "model/synthetic.h"
#include "model/workspace.h"

namespace {

using namespace kl;

constexpr int64_t H = 32, C = 512, R = 64, NOPE = 128, V = 128, KV = C + R, DQ = NOPE + R;
constexpr int64_t kPageRows = 256, kChunk = 512;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best time of repeated runs: at least min_reps, until min_s seconds have passed. `before`, if
// given, runs untimed before each run.
template <class F>
double best_ms(F&& f, int min_reps, double min_s, const std::function<void()>& before = nullptr) {
  f();  // warm-up
  double best = 1e30, start = now_s();
  for (int rep = 0; rep < min_reps || now_s() - start < min_s; rep++) {
    if (before) before();
    const double t0 = now_s();
    f();
    best = std::min(best, now_s() - t0);
  }
  return best * 1e3;
}

// Writes 64 MiB (twice a 32 MiB last-level cache): what a model's decode step does between two
// attention calls of a layer (its weights stream through the caches), so the cache rows come
// from memory, as in the model, not from the last-level cache.
struct Evict {
  std::vector<char> buf = std::vector<char>(size_t(64) << 20);
  unsigned char round = 0;
  void operator()() { std::memset(buf.data(), ++round, buf.size()); }
};

// The same random cache as fp32 pages and as bf16 pages.
struct Cache {
  std::vector<std::vector<float>> pages;
  std::vector<std::vector<uint16_t>> pages16;
  std::vector<const void*> table, table16;
  explicit Cache(int64_t rows, std::mt19937& rng) {
    std::normal_distribution<float> d(0.f, 1.f);
    for (int64_t r = 0; r < rows; r += kPageRows) {
      pages.emplace_back(size_t(kPageRows * KV));
      pages16.emplace_back(size_t(kPageRows * KV));
      for (size_t i = 0; i < pages.back().size(); i++) {
        pages16.back()[i] = f32_to_bf16(d(rng));
        pages.back()[i] = bf16_to_f32(pages16.back()[i]);
      }
      table.push_back(pages.back().data());
      table16.push_back(pages16.back().data());
    }
  }
  const void* const* of(DType t) const { return t == DType::BF16 ? table16.data() : table.data(); }
};

std::vector<float> randn(size_t n, std::mt19937& rng, float sd) {
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

struct Setup {
  Context ctx;
  std::vector<float> scratch;
  WeightView kvb;  // [H·(NOPE + V), C] BF16
};

double run_absorbed(Setup& s, const Cache& cache, const float* q, int64_t n_q, int64_t ctx0, float* out, bool before,
                    DType dt = DType::F32) {
  LatentAttnArgs a;
  a.n_q = n_q;
  a.H = H;
  a.kv_dim = KV;
  a.v_dim = C;
  a.q = q;
  a.ctx0 = ctx0;
  a.pages = cache.of(dt);
  a.cache_dtype = dt;
  a.page_rows = kPageRows;
  a.out = out;
  a.scratch = s.scratch.data();
  a.scratch_floats = s.scratch.size();
  const double work_s = before ? 0.3 : 1.0;
  const int reps = n_q > 1 && ctx0 > 0 ? 1 : 3;
  return best_ms([&] { before ? latent_attention_absorbed_reference(s.ctx, a) : latent_attention_absorbed(s.ctx, a); },
                 reps, work_s);
}

double run_decompressed(Setup& s, const Cache& cache, const float* q, int64_t n_q, int64_t ctx0, float* out,
                        DType dt = DType::F32) {
  LatentDecompArgs a;
  a.n_q = n_q;
  a.H = H;
  a.lat = C;
  a.dr = R;
  a.dk = NOPE;
  a.dv = V;
  a.w_kv = &s.kvb;
  a.q = q;
  a.ldq = H * DQ;
  a.scale = 1.f / std::sqrt(float(DQ));
  a.ctx0 = ctx0;
  a.pages = cache.of(dt);
  a.cache_dtype = dt;
  a.page_rows = kPageRows;
  a.out = out;
  a.ldo = H * V;
  a.scratch = s.scratch.data();
  a.scratch_floats = s.scratch.size();
  return best_ms([&] { latent_attention_decompressed(s.ctx, a); }, 2, 1.0);
}

// The per-token absorbed-form work around the kernel, as the previous mla.cpp did it: scalar
// W_UK(h)ᵀ q per head, then W_UV per head through matmul (one threaded call per head).
double before_absorb_uv(Setup& s, const float* q, float* qabs, const float* lat, float* attn) {
  const int threads = s.ctx.pool->size();
  std::vector<float> rowbuf(size_t(C * threads));
  return best_ms(
      [&] {
        s.ctx.pool->parallel_for(H, [&](int64_t h, int thread) {
          float* rb = rowbuf.data() + thread * C;
          const WeightView uk = s.kvb.slice_rows(h * (NOPE + V), NOPE);
          std::memset(qabs + h * KV, 0, sizeof(float) * C);
          for (int64_t r = 0; r < NOPE; r++) {
            convert_to_f32(uk.dtype, uk.row(r), rb, size_t(C));
            const float qn = q[h * DQ + r];
            for (int64_t j = 0; j < C; j++) qabs[h * KV + j] += qn * rb[j];
          }
        });
        for (int64_t h = 0; h < H; h++)
          matmul_strided(s.ctx, s.kvb.slice_rows(h * (NOPE + V) + NOPE, V), lat + h * C, 1, H * C, attn + h * V, H * V);
      },
      5, 0.3);
}

// The same work as mla.cpp does it now: W_UK(h) widened once per head, gemm_f32; W_UV with the
// row kernel, one head per task.
double after_absorb_uv(Setup& s, const float* q, float* qabs, const float* lat, float* attn) {
  const int threads = s.ctx.pool->size();
  std::vector<float> wuk(size_t(NOPE * C * threads));
  const MatmulRowsFn rows_fn = matmul_rows_fn(*s.ctx.k, s.kvb.dtype);
  return best_ms(
      [&] {
        s.ctx.pool->parallel_for(H, [&](int64_t h, int thread) {
          float* w = wuk.data() + size_t(thread * NOPE * C);
          const WeightView uk = s.kvb.slice_rows(h * (NOPE + V), NOPE);
          for (int64_t r = 0; r < NOPE; r++) convert_to_f32(uk.dtype, uk.row(r), w + r * C, size_t(C));
          GemmF32Args g;
          g.M = 1;
          g.N = C;
          g.K = NOPE;
          g.a = q + h * DQ;
          g.a_rs = H * DQ;
          g.b = w;
          g.ldb = C;
          g.c = qabs + h * KV;
          g.ldc = H * KV;
          s.ctx.k->gemm_f32(g);
        });
        s.ctx.pool->parallel_for(H, [&](int64_t h, int) {
          const WeightView uv = s.kvb.slice_rows(h * (NOPE + V) + NOPE, V);
          const MatmulArgs m{&uv, lat + h * C, 1, H * C, attn + h * V, H * V};
          rows_fn(m, 0, V);
        });
      },
      5, 0.3);
}

}  // namespace

int main(int argc, char** argv) {
  const int max_threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const std::string mode = argc > 2 ? argv[2] : "";
  const bool prefill = mode.empty();
  const CpuFeatures cpu = CpuFeatures::detect();
  Isa isa = cpu.best_isa();
  if (argc > 3 && (!isa_from_name(argv[3], &isa) || !cpu.supports(isa))) {
    std::fprintf(stderr, "attention_bench: '%s' is not a kernel set this CPU runs\n", argv[3]);
    return 2;
  }
  const Kernels& k = kernels_for(isa, cpu);
  const KimiConfig cfg = synthetic_48b_config(4);
  std::mt19937 rng(42);
  std::printf("MLA attention, H %lld, c %lld, r %lld, nope %lld, v %lld; kernels: %s\n", (long long)H, (long long)C,
              (long long)R, (long long)NOPE, (long long)V, isa_name(k.isa));

  std::vector<uint16_t> kvb_data(size_t(H * (NOPE + V) * C));
  {
    std::normal_distribution<float> d(0.f, 1.f / std::sqrt(float(C)));
    for (auto& x : kvb_data) x = f32_to_bf16(d(rng));
  }
  const int64_t max_ctx = 16384 + kChunk;
  Cache cache(max_ctx, rng);
  // Absorbed queries (scaled) and plain queries for the chunk.
  const std::vector<float> qabs = randn(size_t(kChunk * H * KV), rng, 2.f / std::sqrt(float(KV)));
  const std::vector<float> q = randn(size_t(kChunk * H * DQ), rng, 1.f);
  std::vector<float> out_lat(size_t(kChunk * H * C)), out_v(size_t(kChunk * H * V));
  std::vector<float> qabs_tmp(size_t(H * KV));

  for (int threads = 1; threads <= max_threads; threads++) {
    ThreadPool pool(threads);
    Setup s;
    s.ctx = {&pool, &k};
    s.kvb = {kvb_data.data(), DType::BF16, H * (NOPE + V), C};
    s.scratch.resize(std::max(latent_attention_absorbed_scratch_floats(H, KV, C, threads),
                              latent_attention_decompressed_scratch_floats(kChunk, H, C, NOPE, R, V, threads)));
    if (mode == "decode-16k") {
      // Multiply-adds per token: scores over kv_dim and values over v_dim, per head and key.
      const int64_t ctx0 = 16384;
      const double flops = 2.0 * double(H) * double(ctx0 + 1) * double(KV + C);
      Kernels dot = k;
      dot.bf16_activations = k.matmul_rows_bf16_dot != nullptr;
      for (DType dt : {DType::F32, DType::BF16}) {
        const bool bf16 = dt == DType::BF16;
        const double peak = measure_peak_gflops(pool, bf16 ? dot : k, bf16 ? DType::BF16 : DType::F32);
        LatentAttnArgs a;
        a.n_q = 1, a.H = H, a.kv_dim = KV, a.v_dim = C, a.q = qabs.data(), a.ctx0 = ctx0;
        a.pages = cache.of(dt), a.cache_dtype = dt, a.page_rows = kPageRows;
        a.out = out_lat.data(), a.scratch = s.scratch.data(), a.scratch_floats = s.scratch.size();
        Evict evict;
        const double ms = best_ms([&] { latent_attention_absorbed(s.ctx, a); }, 3, 5.0, [&] { evict(); });
        const double gflops = flops / ms * 1e-6;
        std::printf("threads %d, %s cache, context %lld: %.3f ms per token, %.1f GFLOP/s = %.1f %% of the %.1f "
                    "GFLOP/s %s peak\n",
                    threads, bf16 ? "bf16" : "f32", (long long)ctx0 + 1, ms, gflops, 100 * gflops / peak, peak,
                    bf16 && dot.bf16_activations ? "bf16 dot" : "fp32 FMA");
      }
      continue;
    }
    std::printf("\nthreads %d\n", threads);
    std::printf("  decode (ms per token)      before   absorbed  decompressed   auto           bf16 cache: absorbed\n");
    for (int64_t ctx0 : {int64_t(0), int64_t(4096), int64_t(16384)}) {
      const double b = run_absorbed(s, cache, qabs.data(), 1, ctx0, out_lat.data(), true);
      const double a = run_absorbed(s, cache, qabs.data(), 1, ctx0, out_lat.data(), false);
      const double d = run_decompressed(s, cache, q.data(), 1, ctx0, out_v.data());
      const double a16 = run_absorbed(s, cache, qabs.data(), 1, ctx0, out_lat.data(), false, DType::BF16);
      std::printf("  context %6lld           %8.3f   %8.3f      %8.3f   %-12s   %8.3f\n", (long long)ctx0 + 1, b, a, d,
                  mla_cheaper_form(cfg, 1, ctx0) == MlaForm::Absorbed ? "absorbed" : "decompressed", a16);
    }
    std::printf("  absorb W_UK + W_UV / token %8.3f   %8.3f\n",
                before_absorb_uv(s, q.data(), qabs_tmp.data(), out_lat.data(), out_v.data()),
                after_absorb_uv(s, q.data(), qabs_tmp.data(), out_lat.data(), out_v.data()));

    if (!prefill) continue;
    std::printf("  prefill %lld queries (ms)     before   absorbed  decompressed   auto           bf16 cache: decompressed\n",
                (long long)kChunk);
    for (int64_t ctx0 : {int64_t(0), int64_t(16384)}) {
      // The previous kernel at depth takes tens of seconds: time 64 queries from the middle of
      // the chunk (their contexts differ by < 2 %) and scale by 8.
      double b;
      if (ctx0 == 0) {
        b = run_absorbed(s, cache, qabs.data(), kChunk, ctx0, out_lat.data(), true);
      } else {
        b = 8 * run_absorbed(s, cache, qabs.data(), 64, ctx0 + 224, out_lat.data(), true);
      }
      const double a = run_absorbed(s, cache, qabs.data(), kChunk, ctx0, out_lat.data(), false);
      const double d = run_decompressed(s, cache, q.data(), kChunk, ctx0, out_v.data());
      const double d16 = run_decompressed(s, cache, q.data(), kChunk, ctx0, out_v.data(), DType::BF16);
      std::printf("  ctx0 %6lld               %9.1f%s %9.1f     %9.1f   %-12s   %9.1f\n", (long long)ctx0, b,
                  ctx0 ? "*" : " ", a, d,
                  mla_cheaper_form(cfg, kChunk, ctx0) == MlaForm::Absorbed ? "absorbed" : "decompressed", d16);
    }
  }
  if (prefill) std::printf("\n* extrapolated from 64 of the 512 queries\n");
  if (mode != "decode-16k")
    std::printf("absorbed: per token before the kernel add W_UK absorption and after it W_UV (line above);\n"
              "decompressed includes decompressing K and V of every context row.\n");
  return 0;
}
