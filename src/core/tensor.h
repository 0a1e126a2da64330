// Views over tensor bytes. Views never own memory: they point into a mapped file, an owned
// buffer of the model, or an activation buffer.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace kl {

// A read-only n-d tensor in C order (outermost dimension first, as in PyTorch).
struct TensorView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int ndim = 0;
  std::array<int64_t, 4> shape{};  // shape[0] is outermost

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
  }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  std::string shape_str() const;  // "[4096, 2304]"
};

// A 2-d weight [out, in] (nn.Linear layout, y = W·x) in some storage format. Matmul dispatches
// on `dtype`; model code never looks at it (DESIGN.md §1).
struct WeightView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0;  // out features
  int64_t cols = 0;  // in features

  size_t row_bytes() const { return size_t(cols) * dtype_size(dtype); }
  const void* row(int64_t r) const {
    return static_cast<const char*>(data) + size_t(r) * row_bytes();
  }
  // Rows [r0, r0+n) as a weight of its own (used to split kv_b_proj per head, experts, ...).
  WeightView slice_rows(int64_t r0, int64_t n) const { return {row(r0), dtype, n, cols}; }
  bool empty() const { return data == nullptr; }
};

}  // namespace kl
