#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace kl {

void SamplingParams::validate(int64_t vocab) const {
  if (!(temperature >= 0.f) || !std::isfinite(temperature)) fail("temperature must be >= 0 (got ", temperature, ")");
  if (top_k < 0) fail("top-k must be >= 0 (got ", top_k, ")");
  if (!(top_p > 0.f && top_p <= 1.f)) fail("top-p must be in (0, 1] (got ", top_p, ")");
  if (!(min_p >= 0.f && min_p <= 1.f)) fail("min-p must be in [0, 1] (got ", min_p, ")");
  if (!(repetition_penalty > 0.f) || !std::isfinite(repetition_penalty))
    fail("repetition penalty must be > 0 (got ", repetition_penalty, ")");
  if (!std::isfinite(presence_penalty)) fail("presence penalty must be finite");
  if (!std::isfinite(frequency_penalty)) fail("frequency penalty must be finite");
  if (penalty_last_n < -1) fail("penalty window must be -1 (all) or >= 0 (got ", penalty_last_n, ")");
  for (const auto& [id, b] : logit_bias) {
    if (id < 0 || id >= vocab) fail("logit bias for token ", id, ": outside the vocabulary (0..", vocab - 1, ")");
    if (std::isnan(b)) fail("logit bias for token ", id, " is not a number");
  }
}

Sampler::Sampler(const SamplingParams& p, int64_t vocab)
    : p_(p), vocab_(vocab), rng_(p.seed), work_(size_t(vocab)), counts_(size_t(vocab), 0) {
  p_.validate(vocab);
  cand_.reserve(size_t(vocab));
}

int32_t Sampler::sample(const float* logits, const std::vector<int32_t>& history) {
  std::copy(logits, logits + vocab_, work_.begin());
  for (const auto& [id, b] : p_.logit_bias) work_[size_t(id)] += b;

  // Penalties over the last penalty_last_n tokens of the history.
  const bool penalize =
      p_.repetition_penalty != 1.f || p_.presence_penalty != 0.f || p_.frequency_penalty != 0.f;
  if (penalize && p_.penalty_last_n != 0) {
    const size_t n = p_.penalty_last_n < 0 ? history.size()
                                           : std::min(history.size(), size_t(p_.penalty_last_n));
    const size_t b = history.size() - n;
    for (size_t i = b; i < history.size(); i++)
      if (history[i] >= 0 && history[i] < vocab_) counts_[size_t(history[i])]++;
    for (size_t i = b; i < history.size(); i++) {
      const int32_t id = history[i];
      if (id < 0 || id >= vocab_ || counts_[size_t(id)] == 0) continue;
      float& l = work_[size_t(id)];
      if (p_.repetition_penalty != 1.f) l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
      l -= p_.presence_penalty + p_.frequency_penalty * float(counts_[size_t(id)]);
      counts_[size_t(id)] = 0;  // applied once per distinct id; also resets for the next call
    }
  }

  // Greedy: argmax, lowest id on ties.
  if (p_.temperature == 0.f) {
    int32_t best = 0;
    for (int64_t i = 1; i < vocab_; i++)
      if (work_[size_t(i)] > work_[size_t(best)]) best = int32_t(i);
    cand_.assign(1, {best, 1.f});
    return best;
  }

  // Candidates: top-k (partial selection), sorted by logit, highest first.
  cand_.clear();
  for (int64_t i = 0; i < vocab_; i++)
    if (work_[size_t(i)] > -INFINITY) cand_.push_back({int32_t(i), work_[size_t(i)]});
  if (cand_.empty()) fail("sampling: every token has been masked out (logit bias of -inf?)");
  auto by_logit = [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); };
  if (p_.top_k > 0 && size_t(p_.top_k) < cand_.size()) {
    std::nth_element(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    cand_.resize(size_t(p_.top_k));
  }
  std::sort(cand_.begin(), cand_.end(), by_logit);

  // Softmax with temperature (max subtracted; fp64 sum).
  const float mx = cand_[0].second;
  double sum = 0;
  for (auto& c : cand_) {
    c.second = std::exp((c.second - mx) / p_.temperature);
    sum += c.second;
  }
  for (auto& c : cand_) c.second = float(c.second / sum);

  // top-p: the smallest prefix whose mass reaches top_p; min-p: p >= min_p * p_max.
  size_t keep = cand_.size();
  if (p_.top_p < 1.f) {
    double acc = 0;
    for (size_t i = 0; i < cand_.size(); i++) {
      acc += cand_[i].second;
      if (acc >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p_.min_p > 0.f) {
    const float thr = p_.min_p * cand_[0].second;
    size_t m = 1;
    while (m < keep && cand_[m].second >= thr) m++;
    keep = m;
  }
  cand_.resize(keep);
  double total = 0;
  for (const auto& c : cand_) total += c.second;
  for (auto& c : cand_) c.second = float(c.second / total);

  // Draw.
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  double acc = 0;
  for (const auto& c : cand_) {
    acc += c.second;
    if (u < acc) return c.first;
  }
  return cand_.back().first;
}

}  // namespace kl
