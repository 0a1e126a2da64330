#include "model/state.h"

#include <algorithm>
#include <cstring>

namespace kl {

void LatentCache::resize(int64_t n) {
  size_t need = size_t((n + kPageRows - 1) / kPageRows);
  if (need < pages_.size()) {
    pages_.resize(need);
  } else {
    while (pages_.size() < need) pages_.emplace_back(new float[size_t(kPageRows * width_)]());
  }
  table_.resize(pages_.size());
  for (size_t i = 0; i < pages_.size(); i++) table_[i] = pages_[i].get();
  rows_ = n;
}

float* LatentCache::row_mut(int64_t t) {
  auto& page = pages_[size_t(t / kPageRows)];
  if (page.use_count() > 1) {  // shared with a snapshot: copy on write
    std::shared_ptr<float[]> copy(new float[size_t(kPageRows * width_)]);
    std::memcpy(copy.get(), page.get(), sizeof(float) * size_t(kPageRows * width_));
    page = std::move(copy);
    table_[size_t(t / kPageRows)] = page.get();
  }
  return page.get() + (t % kPageRows) * width_;
}

void SequenceState::reset() {
  n_tokens = 0;
  for (auto& k : kda) {
    k.recurrent.zero();
    k.conv.zero();
  }
  for (auto& m : mla) m.resize(0);
}

}  // namespace kl
