// Causal attention of H query heads over a latent cache (the MLA shapes of spec §4.3), in the
// two forms of the same math:
//
//  absorbed      an MQA over the cache itself: score = q̂·row over the whole row (kv_dim values),
//                value = the row's first v_dim values. The caller has folded the key
//                decompression into q̂ and applies the value decompression to the output.
//                Cheap per call, (kv_dim + v_dim) multiply-adds per (query, head, key): decode.
//  decompressed  per head, keys [W_K(h) c ; k_shared] and values W_V(h) c are decompressed from
//                the cache tile by tile (a matmul over all heads), then ordinary attention.
//                Costs the decompression once per call, then only (dk + dr + dv) per (query,
//                head, key): prompt chunks.
//
// Cache rows live in pages of page_rows rows, each row kv_dim = lat + dr values: the latent c
// (lat) then the key part shared by all heads (dr), fp32 or bf16 (cache_dtype). With an fp32
// cache everything is fp32. With a bf16 cache the products take bf16 operands with fp32
// accumulation (the cache rows as stored; queries, decompressed keys and values, and the softmax
// probabilities rounded to bf16), as flash attention over a bf16 cache does; the softmax itself
// stays fp32. Query i of a call sits at position ctx0 + i
// and attends to rows [0, ctx0 + i]; those rows (its own included) must be in the cache.
//
// Both fast kernels are tiled (flash style): keys in tiles, an online softmax per (query, head),
// no score matrix beyond one tile, all buffers in caller-provided scratch (no allocation). Each
// has a plain twin (`*_reference`, the spec of the op) that the tests compare it against.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/kernels.h"

namespace kl {

// ---- absorbed form ----

struct LatentAttnArgs {
  int64_t n_q = 0;     // query tokens
  int64_t H = 0;       // query heads
  int64_t kv_dim = 0;  // width of a cache row used for scores (c + r)
  int64_t v_dim = 0;   // leading part of a row used as the value (c)
  const float* q = nullptr;  // [n_q, H, kv_dim], softmax scale already applied
  int64_t ctx0 = 0;
  const void* const* pages = nullptr;  // rows of cache_dtype
  DType cache_dtype = DType::F32;      // F32 or BF16
  int64_t page_rows = 0;
  float* out = nullptr;  // [n_q, H, v_dim]
  // latent_attention_absorbed_scratch_floats(H, kv_dim, v_dim, threads) floats, for a pool of
  // at most `threads` threads. Not read by the reference.
  float* scratch = nullptr;
  size_t scratch_floats = 0;
};

// Keys in tiles; for one tile, the scores of all (query, head) pairs of a group come from one
// small GEMM, and their probabilities times the tile's rows from another, so each cache row is
// read once per group (once per step in decode) for all heads. Threads split groups and, when
// there are few groups (decode), the context; partial results are merged (log-sum-exp).
void latent_attention_absorbed(const Context& ctx, const LatentAttnArgs& a);
size_t latent_attention_absorbed_scratch_floats(int64_t H, int64_t kv_dim, int64_t v_dim, int n_threads);

// Twin: one (query, head) pair per task, one pass over its rows with dot/axpy from ctx.k (bf16
// cache: the rows widened to fp32, the query rounded to bf16, probabilities not rounded).
void latent_attention_absorbed_reference(const Context& ctx, const LatentAttnArgs& a);

// ---- decompressed form ----

struct LatentDecompArgs {
  int64_t n_q = 0, H = 0;
  int64_t lat = 0;  // latent width c (cache row = [c (lat) ; k_shared (dr)])
  int64_t dr = 0;   // shared key part
  int64_t dk = 0;   // decompressed key part per head
  int64_t dv = 0;   // value width per head
  // [H·(dk + dv), lat]: for head h, dk key rows then dv value rows (any weight format).
  const WeightView* w_kv = nullptr;
  // Query of head h for token i at q + i·ldq + h·(dk + dr): [q_k (dk) ; q_r (dr)].
  const float* q = nullptr;
  int64_t ldq = 0;
  float scale = 1.f;  // applied to the scores
  int64_t ctx0 = 0;
  const void* const* pages = nullptr;  // rows of cache_dtype
  DType cache_dtype = DType::F32;      // F32 or BF16
  int64_t page_rows = 0;
  float* out = nullptr;  // head h of token i at out + i·ldo + h·dv (dv values)
  int64_t ldo = 0;
  // latent_attention_decompressed_scratch_floats(n_q or more, H, lat, dk, dr, dv, threads) floats.
  float* scratch = nullptr;
  size_t scratch_floats = 0;
};

// Per key tile: one threaded matmul decompresses K and V for every head, then (head, query
// block) tasks compute the tile's scores, the online softmax update and probabilities · V into
// `out`. Memory: one decompressed tile plus the transposed queries, whatever the context length.
void latent_attention_decompressed(const Context& ctx, const LatentDecompArgs& a);
size_t latent_attention_decompressed_scratch_floats(int64_t max_q, int64_t H, int64_t lat, int64_t dk, int64_t dr,
                                                    int64_t dv, int n_threads);

// Twin: decompresses every context row (allocates; for tests and measurements), then one
// (query, head) pair at a time: all scores, softmax, weighted sum of values (bf16 cache: keys,
// values and the scaled query rounded to bf16, probabilities not rounded).
void latent_attention_decompressed_reference(const Context& ctx, const LatentDecompArgs& a);

}  // namespace kl
