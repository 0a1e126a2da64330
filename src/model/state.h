// Per-sequence state (DESIGN.md §3): for each KDA layer its fp32 recurrent state and conv
// history, for each MLA layer its latent cache rows, plus the token count. Copying a state is
// its snapshot: the fixed-size KDA part is copied, the MLA pages are shared and copied only
// when written (so a snapshot at position p is "the KDA state at p plus the first p rows").
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/buffer.h"

namespace kl {

struct KdaLayerState {
  Buffer<float> recurrent;  // [H, K, V] fp32, o = Sᵀq (spec §3.6)
  // Last W-1 raw (pre-conv) projections of q, k and v, oldest first: [3, W-1, P]. The
  // reference keeps W columns, but the oldest one is shifted out before it is ever used.
  Buffer<float> conv;
};

// MLA latent cache (spec §4.3): per token one row of kv_lora_rank + qk_rope_head_dim floats
// (the normalized latent c, then the shared key part k_pe). Grows in pages.
class LatentCache {
 public:
  static constexpr int64_t kPageRows = 256;
  LatentCache() = default;
  explicit LatentCache(int64_t width) : width_(width) {}

  int64_t width() const { return width_; }
  int64_t rows() const { return rows_; }
  // Makes rows [0, n) addressable (allocating pages as needed) and sets rows() = n.
  void resize(int64_t n);
  float* row_mut(int64_t t);  // copies a shared page before writing
  const float* row(int64_t t) const { return pages_[size_t(t / kPageRows)].get() + (t % kPageRows) * width_; }
  // Page pointers for the attention kernel, valid until the next resize/row_mut.
  const float* const* page_table() const { return table_.data(); }
  size_t allocated_bytes() const { return pages_.size() * size_t(kPageRows * width_) * sizeof(float); }

 private:
  int64_t width_ = 0;
  int64_t rows_ = 0;
  std::vector<std::shared_ptr<float[]>> pages_;
  std::vector<const float*> table_;
};

class SequenceState {
 public:
  int64_t n_tokens = 0;              // tokens consumed so far
  std::vector<KdaLayerState> kda;    // one per KDA layer, in layer order
  std::vector<LatentCache> mla;      // one per MLA layer, in layer order

  // Back to the empty sequence (keeps the allocations of the KDA part).
  void reset();
};

}  // namespace kl
