// Token sampling from logits: greedy, temperature, top-k, top-p, min-p, repetition /
// presence / frequency penalties and logit bias, with a seeded generator (same seed and
// inputs, same output). Buffers are sized once per sampler.
#pragma once
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace kl {

struct SamplingParams {
  float temperature = 0.f;  // 0: greedy (argmax after bias and penalties)
  int64_t top_k = 0;        // 0: off
  float top_p = 1.f;        // 1: off
  float min_p = 0.f;        // 0: off; keeps tokens with p >= min_p * p_max
  float repetition_penalty = 1.f;  // 1: off; >1 divides positive / multiplies negative logits of seen tokens
  float presence_penalty = 0.f;    // subtracted once from the logit of every seen token
  float frequency_penalty = 0.f;   // subtracted per occurrence
  int64_t penalty_last_n = 64;     // tokens of history the penalties look at; -1: all
  std::unordered_map<int32_t, float> logit_bias;  // added to the logit of the id
  uint64_t seed = 0;

  // Throws kl::Error naming the first out-of-range value.
  void validate(int64_t vocab) const;
};

class Sampler {
 public:
  Sampler(const SamplingParams& p, int64_t vocab);

  // Picks the next id from `logits` [vocab]; `history` holds the sequence's ids so far.
  int32_t sample(const float* logits, const std::vector<int32_t>& history);
  // The probabilities the last sample() drew from, over the candidate ids (tests).
  const std::vector<std::pair<int32_t, float>>& last_distribution() const { return cand_; }
  const SamplingParams& params() const { return p_; }

 private:
  SamplingParams p_;
  int64_t vocab_;
  std::mt19937_64 rng_;
  std::vector<float> work_;                      // [vocab] adjusted logits
  std::vector<int32_t> counts_;                  // [vocab] occurrences in the penalty window
  std::vector<std::pair<int32_t, float>> cand_;  // candidates (id, logit -> prob)
};

}  // namespace kl
