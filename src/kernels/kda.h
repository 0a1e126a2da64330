// Kimi Delta Attention core over one sequence: the delta rule with per-channel decay
// (spec §3.6) in two algorithms that agree to fp32 rounding: token by token (decode) and
// chunkwise-parallel (prefill, spec §3.8). Works per head; callers spread heads over threads.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kl {

struct KdaSeqArgs {
  int64_t T = 0;  // tokens in this run
  int64_t H = 0;  // heads
  int64_t K = 0;  // key dim per head
  int64_t V = 0;  // value dim per head
  // Row t of each input holds all heads, head-major (channel = h*K + d).
  const float* q = nullptr;     // [T, H, K]  L2-normalized and scaled (q̃)
  const float* k = nullptr;     // [T, H, K]  L2-normalized (k̂)
  const float* v = nullptr;     // [T, H, V]
  const float* g = nullptr;     // [T, H, K]  log decay, <= 0
  const float* beta = nullptr;  // [T, H]
  int64_t ld_qkg = 0;           // row stride of q, k, g (>= H*K)
  int64_t ld_v = 0;             // row stride of v and out (>= H*V)
  float* state = nullptr;       // [H, K, V] fp32, updated in place (o = Sᵀq)
  float* out = nullptr;         // [T, H, V]
};

// Largest K and V the kernels accept (they keep per-token vectors of that size on the stack).
constexpr int64_t kKdaMaxDim = 512;

// Token-by-token recurrence for head h (scalar reference, spec §3.6).
void kda_recurrent_head(const KdaSeqArgs& a, int64_t h);

// Chunk length of the chunkwise algorithm.
constexpr int64_t kKdaChunk = 64;
// Scratch floats needed by kda_chunk_head (per calling thread), for the scalar twin and for every
// fast version in the kernel table.
size_t kda_chunk_scratch_floats(int64_t K, int64_t V);
// Chunkwise-parallel form for head h (spec §3.8): every exponent formed is <= 0.
void kda_chunk_head(const KdaSeqArgs& a, int64_t h, float* scratch);

}  // namespace kl
