// Shared helpers for the model tests: the tiny-a fixture and a small engine context.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "format/npy.h"
#include "kernels/kernels.h"
#include "model/model.h"

namespace kl::test {

inline std::string tiny_a() { return std::string(KL_TEST_DATA) + "/tiny-a"; }
inline std::string golden(const std::string& f) { return tiny_a() + "/golden/" + f; }

// The pool size the model tests use unless they ask for one: 2, so the threaded paths are
// covered, or KL_TEST_THREADS when set (an integer in 1..1024), e.g. 1 to rule threading out
// while chasing a difference, or more to stress the work split. A bad value throws (the test
// fails and says why) rather than quietly testing something else.
inline int test_threads() {
  const char* env = std::getenv("KL_TEST_THREADS");
  if (!env || !*env) return 2;
  char* end = nullptr;
  long n = std::strtol(env, &end, 10);
  if (*end != '\0' || n < 1 || n > 1024)
    throw std::invalid_argument("KL_TEST_THREADS must be an integer in 1..1024, got '" + std::string(env) + "'");
  return int(n);
}

struct Engine {
  explicit Engine(int threads = test_threads(), Isa isa = CpuFeatures::detect().best_isa())
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
