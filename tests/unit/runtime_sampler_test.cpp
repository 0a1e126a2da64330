// The sampler, tested statistically with fixed seeds: empirical frequencies against the
// distribution computed here from the definitions, within 5 standard errors.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/error.h"
#include "runtime/sampler.h"

namespace kl {
namespace {

std::vector<double> softmax(const std::vector<float>& l, double temp) {
  double mx = *std::max_element(l.begin(), l.end());
  std::vector<double> p(l.size());
  double s = 0;
  for (size_t i = 0; i < l.size(); i++) s += p[i] = std::exp((l[i] - mx) / temp);
  for (auto& x : p) x /= s;
  return p;
}

// Draws n samples and checks the frequencies against `want` (zero-probability ids never drawn).
void expect_distribution(Sampler& s, const std::vector<float>& logits, const std::vector<int32_t>& history,
                         const std::vector<double>& want, int n = 100000) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; i++) counts[size_t(s.sample(logits.data(), history))]++;
  for (size_t i = 0; i < want.size(); i++) {
    const double f = double(counts[i]) / n;
    if (want[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "id " << i << " must never be drawn";
    } else {
      const double se = std::sqrt(want[i] * (1 - want[i]) / n);
      EXPECT_NEAR(f, want[i], 5 * se + 1e-9) << "id " << i;
    }
  }
}

const std::vector<float> kLogits = {1.0f, 2.0f, 3.0f, 0.5f, -1.0f, 2.5f};

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  SamplingParams p;
  Sampler s(p, 4);
  std::vector<float> l = {0.f, 3.f, 3.f, 1.f};
  EXPECT_EQ(s.sample(l.data(), {}), 1);
}

TEST(Sampler, TemperatureFollowsSoftmax) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.seed = 1;
  Sampler s(p, 6);
  expect_distribution(s, kLogits, {}, softmax(kLogits, 0.7));
}

TEST(Sampler, TopKKeepsOnlyTheKBest) {
  SamplingParams p;
  p.temperature = 1.f;
  p.top_k = 2;
  p.seed = 2;
  Sampler s(p, 6);
  // Best two: id 2 (3.0) and id 5 (2.5).
  std::vector<double> want(6, 0.0);
  const double a = std::exp(3.0), b = std::exp(2.5);
  want[2] = a / (a + b);
  want[5] = b / (a + b);
  expect_distribution(s, kLogits, {}, want);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  SamplingParams p;
  p.temperature = 1.f;
  p.top_p = 0.8f;
  p.seed = 3;
  Sampler s(p, 6);
  std::vector<double> full = softmax(kLogits, 1.0);
  // Sorted: 2, 5, 1, 0, 3, 4. Cumulative mass decides the nucleus.
  std::vector<int> order = {2, 5, 1, 0, 3, 4};
  std::vector<double> want(6, 0.0);
  double acc = 0;
  for (int id : order) {
    want[size_t(id)] = full[size_t(id)];
    acc += full[size_t(id)];
    if (acc >= 0.8) break;
  }
  for (auto& w : want) w /= acc;
  expect_distribution(s, kLogits, {}, want);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 1.f;
  p.min_p = 0.3f;
  p.seed = 4;
  Sampler s(p, 6);
  std::vector<double> full = softmax(kLogits, 1.0);
  const double pmax = full[2];
  std::vector<double> want(6, 0.0);
  double keep = 0;
  for (size_t i = 0; i < 6; i++)
    if (full[i] >= 0.3 * pmax) keep += want[i] = full[i];
  for (auto& w : want) w /= keep;
  expect_distribution(s, kLogits, {}, want);
}

TEST(Sampler, PenaltiesAndBias) {
  SamplingParams p;
  p.temperature = 1.f;
  p.repetition_penalty = 1.5f;
  p.presence_penalty = 0.25f;
  p.frequency_penalty = 0.5f;
  p.logit_bias = {{4, 2.0f}};
  p.seed = 5;
  Sampler s(p, 6);
  const std::vector<int32_t> history = {2, 2, 4, 1};
  std::vector<float> adj = kLogits;
  adj[4] += 2.0f;                                   // bias first: -1 + 2 = 1
  adj[2] = adj[2] / 1.5f - 0.25f - 0.5f * 2;        // seen twice, positive logit divided
  adj[4] = adj[4] / 1.5f - 0.25f - 0.5f * 1;        // 1.0 (after bias) divided
  adj[1] = adj[1] / 1.5f - 0.25f - 0.5f * 1;
  expect_distribution(s, kLogits, history, softmax(adj, 1.0));
}

TEST(Sampler, NegativeLogitsAreMultipliedByTheRepetitionPenalty) {
  SamplingParams p;
  p.temperature = 1.f;
  p.repetition_penalty = 2.f;
  p.seed = 6;
  Sampler s(p, 3);
  std::vector<float> l = {-1.f, 0.5f, 0.f};
  std::vector<float> adj = {-2.f, 0.5f, 0.f};
  expect_distribution(s, l, {0}, softmax(adj, 1.0));
}

TEST(Sampler, PenaltyWindow) {
  SamplingParams p;
  p.presence_penalty = 100.f;  // greedy, but a seen token is pushed far down
  p.penalty_last_n = 2;
  Sampler s(p, 6);
  // id 2 (the argmax) was seen 3 tokens ago: outside the window, so still chosen.
  EXPECT_EQ(s.sample(kLogits.data(), {2, 0, 1}), 2);
  EXPECT_EQ(s.sample(kLogits.data(), {0, 2}), 5);
}

TEST(Sampler, BanWithMinusInfinity) {
  SamplingParams p;
  p.temperature = 1.f;
  p.logit_bias = {{2, -INFINITY}, {5, -INFINITY}};
  p.seed = 7;
  Sampler s(p, 6);
  std::vector<float> adj = kLogits;
  adj[2] = adj[5] = -1e30f;
  expect_distribution(s, kLogits, {}, softmax(adj, 1.0), 50000);
}

TEST(Sampler, SameSeedSameOutputs) {
  SamplingParams p;
  p.temperature = 1.2f;
  p.top_p = 0.95f;
  p.seed = 42;
  Sampler a(p, 6), b(p, 6);
  p.seed = 43;
  Sampler c(p, 6);
  std::vector<int32_t> ra, rb, rc;
  for (int i = 0; i < 200; i++) {
    ra.push_back(a.sample(kLogits.data(), ra));
    rb.push_back(b.sample(kLogits.data(), rb));
    rc.push_back(c.sample(kLogits.data(), rc));
  }
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
}

TEST(Sampler, InvalidParamsAreErrors) {
  auto bad = [](auto edit, const char* what) {
    SamplingParams p;
    edit(p);
    try {
      Sampler s(p, 10);
      ADD_FAILURE() << "accepted " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  bad([](SamplingParams& p) { p.temperature = -1; }, "temperature");
  bad([](SamplingParams& p) { p.top_p = 0; }, "top-p");
  bad([](SamplingParams& p) { p.top_p = 1.5; }, "top-p");
  bad([](SamplingParams& p) { p.min_p = 2; }, "min-p");
  bad([](SamplingParams& p) { p.top_k = -3; }, "top-k");
  bad([](SamplingParams& p) { p.repetition_penalty = 0; }, "repetition");
  bad([](SamplingParams& p) { p.logit_bias = {{10, 1.f}}; }, "outside the vocabulary");
}

}  // namespace
}  // namespace kl
