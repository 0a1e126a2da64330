// Per-sequence state (DESIGN.md §3): for each KDA layer its fp32 recurrent state and conv
// history, for each MLA layer its latent cache rows, plus the token count. Copying a state is
// its snapshot: the fixed-size KDA part is copied, the MLA pages are shared and copied only
// when written (so a snapshot at position p is "the KDA state at p plus the first p rows").
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/buffer.h"
#include "core/dtype.h"

namespace kl {

struct KdaLayerState {
  Buffer<float> recurrent;  // [H, K, V] fp32, o = Sᵀq (spec §3.6)
  // Last W-1 raw (pre-conv) projections of q, k and v, oldest first: [3, W-1, P]. The
  // reference keeps W columns, but the oldest one is shifted out before it is ever used.
  Buffer<float> conv;
};

// MLA latent cache (spec §4.3): per token one row of kv_lora_rank + qk_rope_head_dim values
// (the normalized latent c, then the shared key part k_pe), stored as fp32 (exact; the default)
// or bf16 (half the memory; attention then runs on bf16 operands with fp32 accumulation, as
// vLLM's and FlashMLA's bf16 caches do). Grows in 64-byte aligned pages of kPageRows rows.
class LatentCache {
 public:
  static constexpr int64_t kPageRows = 256;
  LatentCache() = default;
  // dtype: DType::F32 or DType::BF16 (anything else throws).
  explicit LatentCache(int64_t width, DType dtype = DType::F32);

  int64_t width() const { return width_; }
  int64_t rows() const { return rows_; }
  DType dtype() const { return dtype_; }
  size_t row_bytes() const { return size_t(width_) * dtype_size(dtype_); }
  // Makes rows [0, n) addressable (allocating pages as needed) and sets rows() = n.
  void resize(int64_t n);
  // Row t in the cache's dtype: fp32 values or bf16 bit patterns.
  const void* row(int64_t t) const {
    return pages_[size_t(t / kPageRows)].get() + size_t(t % kPageRows) * row_bytes();
  }
  void* row_mut(int64_t t);  // copies a shared page before writing
  // Row t from / to fp32 (rounded to nearest even when the cache is bf16).
  void write_row(int64_t t, const float* src);
  void read_row(int64_t t, float* dst) const;
  // Page pointers for the attention kernels (rows of the cache's dtype), valid until the next
  // resize/row_mut/write_row.
  const void* const* page_table() const { return table_.data(); }
  size_t allocated_bytes() const { return pages_.size() * size_t(kPageRows) * row_bytes(); }

 private:
  int64_t width_ = 0;
  int64_t rows_ = 0;
  DType dtype_ = DType::F32;
  std::vector<std::shared_ptr<unsigned char[]>> pages_;
  std::vector<const void*> table_;
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
