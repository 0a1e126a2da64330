// Chunkwise-parallel KDA (spec §3.8) against the token-by-token recurrence (spec §3.6) on
// random inputs with strong decay and long sequences: same outputs and final state to fp32
// rounding, no inf or NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/kda.h"
#include "kernels/ops.h"

namespace kl {
namespace {

struct Inputs {
  int64_t T, H, K, V;
  std::vector<float> q, k, v, g, beta, state;
};

// Decay like the model's: g = -exp(A_log) softplus(z + dt_bias), A_log up to log 16.
Inputs make_inputs(int64_t T, int64_t H, int64_t K, int64_t V, uint32_t seed, float max_a) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n01(0.f, 1.f);
  std::uniform_real_distribution<float> ua(1.f, max_a);
  Inputs in{T, H, K, V, {}, {}, {}, {}, {}, {}};
  in.q.resize(size_t(T * H * K));
  in.k.resize(size_t(T * H * K));
  in.g.resize(size_t(T * H * K));
  in.v.resize(size_t(T * H * V));
  in.beta.resize(size_t(T * H));
  std::vector<float> a(static_cast<size_t>(H));
  for (auto& x : a) x = ua(rng);
  for (auto& x : in.q) x = n01(rng);
  for (auto& x : in.k) x = n01(rng);
  for (auto& x : in.v) x = n01(rng);
  for (auto& x : in.beta) x = sigmoidf(n01(rng));
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < H; h++) {
      l2norm_scale(in.q.data() + (t * H + h) * K, K, 1e-6f, 1.f / std::sqrt(float(K)));
      l2norm_scale(in.k.data() + (t * H + h) * K, K, 1e-6f, 1.f);
      for (int64_t d = 0; d < K; d++)
        in.g[size_t((t * H + h) * K + d)] = -a[size_t(h)] * softplusf(2.f * n01(rng) - 4.f);
    }
  in.state.resize(size_t(H * K * V));
  for (auto& x : in.state) x = 0.1f * n01(rng);
  return in;
}

KdaSeqArgs args(Inputs& in, std::vector<float>& state, std::vector<float>& out) {
  KdaSeqArgs a;
  a.T = in.T;
  a.H = in.H;
  a.K = in.K;
  a.V = in.V;
  a.q = in.q.data();
  a.k = in.k.data();
  a.v = in.v.data();
  a.g = in.g.data();
  a.beta = in.beta.data();
  a.ld_qkg = in.H * in.K;
  a.ld_v = in.H * in.V;
  a.state = state.data();
  a.out = out.data();
  return a;
}

void compare(int64_t T, int64_t H, int64_t K, int64_t V, float max_a, bool initial_state) {
  Inputs in = make_inputs(T, H, K, V, uint32_t(T * 31 + K), max_a);
  std::vector<float> s_rec = initial_state ? in.state : std::vector<float>(in.state.size(), 0.f);
  std::vector<float> s_chk = s_rec;
  std::vector<float> o_rec(size_t(T * H * V)), o_chk(size_t(T * H * V));
  KdaSeqArgs ar = args(in, s_rec, o_rec), ac = args(in, s_chk, o_chk);
  std::vector<float> scratch(kda_chunk_scratch_floats(K, V));
  for (int64_t h = 0; h < H; h++) {
    kda_recurrent_head(ar, h);
    kda_chunk_head(ac, h, scratch.data());
  }
  float omax = 0, odiff = 0, smax = 0, sdiff = 0;
  for (size_t i = 0; i < o_rec.size(); i++) {
    ASSERT_TRUE(std::isfinite(o_chk[i])) << "output " << i;
    omax = std::max(omax, std::fabs(o_rec[i]));
    odiff = std::max(odiff, std::fabs(o_rec[i] - o_chk[i]));
  }
  for (size_t i = 0; i < s_rec.size(); i++) {
    ASSERT_TRUE(std::isfinite(s_chk[i])) << "state " << i;
    smax = std::max(smax, std::fabs(s_rec[i]));
    sdiff = std::max(sdiff, std::fabs(s_rec[i] - s_chk[i]));
  }
  // fp32 rounding over a long recurrence: a few ulps of the largest value.
  EXPECT_LE(odiff, 2e-5f * std::max(omax, 1e-3f)) << "T=" << T << " K=" << K << " output";
  EXPECT_LE(sdiff, 2e-5f * std::max(smax, 1e-3f)) << "T=" << T << " K=" << K << " state";
}

TEST(KdaKernel, ChunkedMatchesRecurrentStrongDecayLong) { compare(2085, 2, 64, 48, 16.f, false); }
TEST(KdaKernel, ChunkedMatchesRecurrentWithInitialState) { compare(300, 3, 48, 32, 16.f, true); }
TEST(KdaKernel, ChunkedMatchesRecurrentWeakDecay) { compare(1000, 1, 128, 128, 1.0001f, true); }
TEST(KdaKernel, PartialChunks) {
  for (int64_t T : {1, 2, 63, 64, 65, 127, 129}) compare(T, 2, 16, 8, 16.f, true);
}

}  // namespace
}  // namespace kl
