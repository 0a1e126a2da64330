// Overflow-checked size arithmetic for sizes read from untrusted files (format/ internal).
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace kl::detail {

// a * b for non-negative a, b; false if the product does not fit in int64.
inline bool mul_i64(int64_t a, int64_t b, int64_t* out) {
  if (a < 0 || b < 0) return false;
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

// Number of elements of `shape` and its size in bytes for elements of `elem` bytes; false if a
// dimension is negative or either value does not fit in int64 (so it also fits in size_t on
// 64-bit hosts, and every later `size_t(numel)` is safe).
inline bool shape_bytes(const std::vector<int64_t>& shape, size_t elem, int64_t* numel, uint64_t* bytes) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (!mul_i64(n, d, &n)) return false;
  }
  int64_t b;
  if (!mul_i64(n, int64_t(elem), &b)) return false;
  if (uint64_t(b) > std::numeric_limits<size_t>::max()) return false;
  *numel = n;
  *bytes = uint64_t(b);
  return true;
}

}  // namespace kl::detail
