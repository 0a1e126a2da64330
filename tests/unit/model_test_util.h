// Shared helpers for the model tests: the tiny-a fixture and a small engine context.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "format/npy.h"
#include "kernels/kernels.h"
#include "model/model.h"

namespace kl::test {

inline std::string tiny_a() { return std::string(KL_TEST_DATA) + "/tiny-a"; }
inline std::string golden(const std::string& f) { return tiny_a() + "/golden/" + f; }

struct Engine {
  explicit Engine(int threads = 2, Isa isa = CpuFeatures::detect().best_isa())
      : pool(threads), cpu(CpuFeatures::detect()) {
    ctx.pool = &pool;
    ctx.k = &kernels_for(isa, cpu);
  }
  ThreadPool pool;
  CpuFeatures cpu;
  Context ctx;
};

inline std::vector<int32_t> load_tokens(const std::string& file) {
  std::vector<int64_t> v = read_npy(golden(file)).as_i64();
  return std::vector<int32_t>(v.begin(), v.end());
}

inline float max_abs(const float* a, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs(a[i]));
  return m;
}

inline float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Runs `tokens` through a fresh state in chunks of the given sizes; returns logits [T, vocab].
inline std::vector<float> run_chunks(const Model& m, Engine& e, const std::vector<int32_t>& tokens,
                                     const std::vector<int64_t>& chunks, SequenceState* state_out = nullptr,
                                     ForwardTrace* trace = nullptr) {
  const int64_t V = m.config().vocab_size;
  SequenceState st = m.new_state();
  Workspace ws(m.config(), int64_t(tokens.size()), e.pool.size());
  std::vector<float> logits(tokens.size() * size_t(V));
  int64_t off = 0;
  for (int64_t n : chunks) {
    Batch b;
    b.runs.push_back({&st, tokens.data() + off, n});
    b.logits = LogitsFor::AllTokens;
    m.forward(e.ctx, b, ws, logits.data() + off * V, trace);
    off += n;
  }
  EXPECT_EQ(off, int64_t(tokens.size()));
  if (state_out) *state_out = st;
  return logits;
}

}  // namespace kl::test
