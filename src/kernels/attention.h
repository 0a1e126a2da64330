// Causal attention of several query heads over one shared latent cache (MLA decode form,
// spec §4.3): score = q·row over the whole row (c + r values), value = first `v_dim` values
// of the row. One pass over the cache per (query, head), online softmax in fp32.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace kl {

struct LatentAttnArgs {
  int64_t n_q = 0;     // query tokens
  int64_t H = 0;       // query heads
  int64_t kv_dim = 0;  // width of a cache row used for scores (c + r)
  int64_t v_dim = 0;   // leading part of a row used as the value (c)
  const float* q = nullptr;  // [n_q, H, kv_dim], softmax scale already applied
  // Query i attends to cache rows [0, ctx0 + i]; rows live in pages of `page_rows` rows,
  // each row `kv_dim` floats.
  int64_t ctx0 = 0;
  const float* const* pages = nullptr;
  int64_t page_rows = 0;
  float* out = nullptr;  // [n_q, H, v_dim]
};

// Threads over (query, head) pairs.
void latent_attention(const Context& ctx, const LatentAttnArgs& a);

}  // namespace kl
