#include "model/state.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "core/error.h"

namespace kl {

namespace {
// Pages are 64-byte aligned (whole cache lines for the attention kernels' vector loads).
std::shared_ptr<unsigned char[]> new_page(size_t bytes) {
  auto* p = static_cast<unsigned char*>(::operator new[](bytes, std::align_val_t(64)));
  return std::shared_ptr<unsigned char[]>(p, [](unsigned char* q) { ::operator delete[](q, std::align_val_t(64)); });
}
}  // namespace

LatentCache::LatentCache(int64_t width, DType dtype) : width_(width), dtype_(dtype) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    fail("latent cache: dtype ", dtype_name(dtype), " is not supported (F32 or BF16)");
}

void LatentCache::resize(int64_t n) {
  const size_t need = size_t((n + kPageRows - 1) / kPageRows);
  const size_t page_bytes = size_t(kPageRows) * row_bytes();
  if (need < pages_.size()) {
    pages_.resize(need);
  } else {
    while (pages_.size() < need) {
      pages_.push_back(new_page(page_bytes));
      std::memset(pages_.back().get(), 0, page_bytes);
    }
  }
  table_.resize(pages_.size());
  for (size_t i = 0; i < pages_.size(); i++) table_[i] = pages_[i].get();
  rows_ = n;
}

void* LatentCache::row_mut(int64_t t) {
  auto& page = pages_[size_t(t / kPageRows)];
  const size_t page_bytes = size_t(kPageRows) * row_bytes();
  if (page.use_count() > 1) {  // shared with a snapshot: copy on write
    auto copy = new_page(page_bytes);
    std::memcpy(copy.get(), page.get(), page_bytes);
    page = std::move(copy);
    table_[size_t(t / kPageRows)] = page.get();
  }
  return page.get() + size_t(t % kPageRows) * row_bytes();
}

void LatentCache::write_row(int64_t t, const float* src) {
  void* dst = row_mut(t);
  if (dtype_ == DType::F32) {
    std::memcpy(dst, src, sizeof(float) * size_t(width_));
  } else {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < width_; i++) d[i] = f32_to_bf16(src[i]);
  }
}

void LatentCache::read_row(int64_t t, float* dst) const { convert_to_f32(dtype_, row(t), dst, size_t(width_)); }

void SequenceState::reset() {
  n_tokens = 0;
  for (auto& k : kda) {
    k.recurrent.zero();
    k.conv.zero();
  }
  for (auto& m : mla) m.resize(0);
}

}  // namespace kl
