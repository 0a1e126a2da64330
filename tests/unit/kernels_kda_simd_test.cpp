// The fast KDA kernels of every kernel table this CPU runs against their scalar twins
// (kernels/kda.cpp): token-by-token (spec §3.6) and chunkwise (spec §3.8), over awkward head
// sizes and token counts (partial vectors, partial chunks and sub-chunks), with and without an
// initial state, strong decay; plus their vectorized exp against std::exp.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/kda.h"
#include "kernels/kda_simd.h"
#include "kernels/kernels.h"
#include "kernels/neon_impl.h"
#include "kernels/ops.h"

namespace kl {
namespace {

// The fast tables this CPU can run (the scalar table holds the twins themselves).
std::vector<Isa> fast_isas() {
  const CpuFeatures cpu = CpuFeatures::detect();
  std::vector<Isa> out;
  for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Neon})
    if (cpu.supports(isa) && kernels_for(isa, cpu).kda_chunk_head != scalar_kernels().kda_chunk_head)
      out.push_back(isa);
  return out;
}

// One sequence with rows padded past H·K (odd strides, so rows are not vector aligned).
struct Seq {
  int64_t T, H, K, V, ld_qkg, ld_v;
  std::vector<float> q, k, v, g, beta, state;
};

// Decay like the model's: g = -a softplus(z), a in [1, max_a] per head (A_log up to log 16).
Seq make_seq(int64_t T, int64_t H, int64_t K, int64_t V, uint32_t seed, float max_a, bool initial_state) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n01(0.f, 1.f);
  std::uniform_real_distribution<float> ua(1.f, max_a);
  Seq s{T, H, K, V, H * K + 3, H * V + 5, {}, {}, {}, {}, {}, {}};
  s.q.assign(size_t(T * s.ld_qkg), 0.f);
  s.k.assign(size_t(T * s.ld_qkg), 0.f);
  s.g.assign(size_t(T * s.ld_qkg), 0.f);
  s.v.assign(size_t(T * s.ld_v), 0.f);
  s.beta.resize(size_t(T * H));
  std::vector<float> a(static_cast<size_t>(H));
  for (auto& x : a) x = ua(rng);
  for (auto& x : s.beta) x = sigmoidf(n01(rng));
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < H; h++) {
      float* q = s.q.data() + t * s.ld_qkg + h * K;
      float* k = s.k.data() + t * s.ld_qkg + h * K;
      float* g = s.g.data() + t * s.ld_qkg + h * K;
      float* v = s.v.data() + t * s.ld_v + h * V;
      for (int64_t d = 0; d < K; d++) {
        q[d] = n01(rng);
        k[d] = n01(rng);
        g[d] = -a[size_t(h)] * softplusf(2.f * n01(rng) - 4.f);
      }
      for (int64_t e = 0; e < V; e++) v[e] = n01(rng);
      l2norm_scale(q, K, 1e-6f, 1.f / std::sqrt(float(K)));
      l2norm_scale(k, K, 1e-6f, 1.f);
    }
  s.state.assign(size_t(H * K * V), 0.f);
  if (initial_state)
    for (auto& x : s.state) x = 0.1f * n01(rng);
  return s;
}

struct Result {
  std::vector<float> state, out;
};

enum class Algo { Recurrent, Chunked };

Result run(const Seq& s, const Kernels& k, Algo algo) {
  Result r{s.state, std::vector<float>(size_t(s.T * s.ld_v), 0.f)};
  KdaSeqArgs a;
  a.T = s.T, a.H = s.H, a.K = s.K, a.V = s.V;
  a.q = s.q.data(), a.k = s.k.data(), a.v = s.v.data(), a.g = s.g.data(), a.beta = s.beta.data();
  a.ld_qkg = s.ld_qkg, a.ld_v = s.ld_v;
  a.state = r.state.data(), a.out = r.out.data();
  std::vector<float> scratch(kda_chunk_scratch_floats(s.K, s.V));  // exactly what the model gives
  for (int64_t h = 0; h < s.H; h++) {
    if (algo == Algo::Chunked)
      k.kda_chunk_head(a, h, scratch.data());
    else
      k.kda_recurrent_head(a, h);
  }
  return r;
}

// Max |got − want| within rel · max|want| (floored so that all-zero outputs compare absolutely),
// every value finite, and the padding between rows of `out` untouched.
void expect_close(const Seq& s, const Result& want, const Result& got, float rel, const std::string& what) {
  auto check = [&](const std::vector<float>& w, const std::vector<float>& x, const char* name) {
    ASSERT_EQ(w.size(), x.size());
    float wmax = 0.f, diff = 0.f;
    for (size_t i = 0; i < w.size(); i++) {
      ASSERT_TRUE(std::isfinite(x[i])) << what << " " << name << "[" << i << "] = " << x[i];
      wmax = std::max(wmax, std::fabs(w[i]));
      diff = std::max(diff, std::fabs(w[i] - x[i]));
    }
    EXPECT_LE(diff, rel * std::max(wmax, 1e-3f)) << what << " " << name << " (max |value| " << wmax << ")";
  };
  check(want.out, got.out, "output");
  check(want.state, got.state, "state");
  for (int64_t t = 0; t < s.T; t++)
    for (int64_t c = s.H * s.V; c < s.ld_v; c++)
      ASSERT_EQ(got.out[size_t(t * s.ld_v + c)], 0.f) << what << ": wrote past the row at t=" << t;
}

TEST(KdaSimd, MatchesScalarTwinsOverShapes) {
  const std::vector<Isa> isas = fast_isas();
  if (isas.empty()) GTEST_SKIP() << "no fast KDA kernels on this CPU";
  const CpuFeatures cpu = CpuFeatures::detect();
  const Kernels& ref = scalar_kernels();
  // 5 and 20 are not multiples of the AVX2 width either (masked tails on every ISA).
  for (int64_t K : {5, 8, 16, 20, 24, 48, 64, 128})
    for (int64_t V : {5, 8, 16, 20, 24, 48, 64, 128})
      for (int64_t T : {1, 2, 3, 17, 63, 64, 65, 200})
        for (bool init : {false, true}) {
          // Big heads only over the long runs that stress them; everything else fully.
          if (K * V > 64 * 64 && T != 1 && T != 65 && T != 200) continue;
          const Seq s = make_seq(T, 2, K, V, uint32_t(T * 1009 + K * 31 + V), 16.f, init);
          const Result rec = run(s, ref, Algo::Recurrent);
          const Result chk = run(s, ref, Algo::Chunked);
          for (Isa isa : isas) {
            const Kernels& k = kernels_for(isa, cpu);
            const std::string what = std::string(isa_name(isa)) + " K=" + std::to_string(K) +
                                     " V=" + std::to_string(V) + " T=" + std::to_string(T) +
                                     (init ? " with state" : " from zero");
            expect_close(s, rec, run(s, k, Algo::Recurrent), 1e-5f, what + " recurrent");
            expect_close(s, chk, run(s, k, Algo::Chunked), 1e-5f, what + " chunked");
            if (HasFatalFailure() || HasNonfatalFailure()) return;
          }
        }
}

// A long prompt with strong decay (Γ reaches far below −88 inside a chunk): the fast chunked
// kernel against the scalar recurrence, as the model switches between them.
TEST(KdaSimd, LongChunkedMatchesScalarRecurrence) {
  const std::vector<Isa> isas = fast_isas();
  if (isas.empty()) GTEST_SKIP() << "no fast KDA kernels on this CPU";
  const CpuFeatures cpu = CpuFeatures::detect();
  const Seq s = make_seq(2085, 2, 64, 48, 7, 16.f, true);
  const Result rec = run(s, scalar_kernels(), Algo::Recurrent);
  for (Isa isa : isas) {
    const Kernels& k = kernels_for(isa, cpu);
    expect_close(s, rec, run(s, k, Algo::Chunked), 2e-5f, std::string(isa_name(isa)) + " chunked T=2085");
    expect_close(s, rec, run(s, k, Algo::Recurrent), 2e-5f, std::string(isa_name(isa)) + " recurrent T=2085");
  }
}

// The model's head size with weak decay: the state keeps a long memory and grows.
TEST(KdaSimd, WeakDecayModelHeads) {
  const std::vector<Isa> isas = fast_isas();
  if (isas.empty()) GTEST_SKIP() << "no fast KDA kernels on this CPU";
  const CpuFeatures cpu = CpuFeatures::detect();
  const Seq s = make_seq(300, 1, 128, 128, 11, 1.0001f, true);
  const Result rec = run(s, scalar_kernels(), Algo::Recurrent);
  const Result chk = run(s, scalar_kernels(), Algo::Chunked);
  for (Isa isa : isas) {
    const Kernels& k = kernels_for(isa, cpu);
    expect_close(s, rec, run(s, k, Algo::Recurrent), 1e-5f, std::string(isa_name(isa)) + " recurrent");
    expect_close(s, chk, run(s, k, Algo::Chunked), 1e-5f, std::string(isa_name(isa)) + " chunked");
  }
}

#if defined(KL_HAVE_X86_KERNELS) || (defined(__aarch64__) && defined(KL_HAVE_NEON_KERNELS))
// The kernels' exp over [−100, 0]: relative error within 2e-7 of exp while the result is a normal
// float, at most FLT_MIN below that, never above 1; NaN stays NaN.
TEST(KdaSimd, VectorExpMatchesStdExp) {
  const CpuFeatures cpu = CpuFeatures::detect();
  std::vector<float> x;
  for (float v = 0.f; v >= -100.f; v -= 1.f / 4096.f) x.push_back(v);
  for (float v : {-0.f, -1e-30f, -FLT_MIN, -1e-7f, -0.34657359f, -0.34657360f, -87.3365f, -87.3366f, -88.f,
                  -103.f, -1e30f, -std::numeric_limits<float>::infinity()})
    x.push_back(v);
  x.push_back(-5.f);  // an odd count, so the masked tail runs
  using ExpFn = void (*)(const float*, float*, int64_t);
  std::vector<std::pair<Isa, ExpFn>> fns;
#if defined(KL_HAVE_X86_KERNELS)
  if (cpu.supports(Isa::Avx2)) fns.push_back({Isa::Avx2, avx2::kda_exp});
  if (cpu.supports(Isa::Avx512)) fns.push_back({Isa::Avx512, avx512::kda_exp});
#else
  if (cpu.supports(Isa::Neon)) fns.push_back({Isa::Neon, neon::kda_exp});
#endif
  if (fns.empty()) GTEST_SKIP() << "no SIMD exp on this CPU";
  for (auto [isa, fn] : fns) {
    std::vector<float> y(x.size(), -1.f);
    fn(x.data(), y.data(), int64_t(x.size()));
    double worst = 0;
    float worst_x = 0;
    for (size_t i = 0; i < x.size(); i++) {
      const double want = std::exp(double(x[i]));
      ASSERT_TRUE(y[i] >= 0.f && y[i] <= 1.f) << isa_name(isa) << " exp(" << x[i] << ") = " << y[i];
      if (want >= FLT_MIN) {
        const double rel = std::fabs(double(y[i]) - want) / want;
        if (rel > worst) worst = rel, worst_x = x[i];
      } else {
        ASSERT_LE(y[i], FLT_MIN) << isa_name(isa) << " exp(" << x[i] << ")";
      }
    }
    EXPECT_LE(worst, 2e-7) << isa_name(isa) << " worst at x = " << worst_x;
    const float nan_in[3] = {-1.f, std::numeric_limits<float>::quiet_NaN(), -200.f};
    float nan_out[3];
    fn(nan_in, nan_out, 3);
    EXPECT_TRUE(std::isnan(nan_out[1])) << isa_name(isa) << ": exp(NaN) must stay NaN";
    EXPECT_EQ(nan_out[2], 0.f) << isa_name(isa);
    std::printf("%s exp: max relative error %.3g (at x = %.8g)\n", isa_name(isa), worst, double(worst_x));
  }
}
#endif

}  // namespace
}  // namespace kl
