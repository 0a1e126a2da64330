// Owned, 64-byte aligned buffers for activations, state and in-memory weights. Sized once,
// reused.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace kl {

// The transparent huge page size of x86-64 and of AArch64 with 4 KiB base pages: where buffers
// and weights read into memory ask for huge pages (Buffer below, MappedFile::read_whole).
inline constexpr size_t kHugePageBytes = size_t(2) << 20;

template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n) { resize(n); }
  Buffer(const Buffer& o) { *this = o; }
  Buffer& operator=(const Buffer& o) {
    if (this != &o) {
      resize(o.n_);
      if (n_) std::memcpy(static_cast<void*>(ptr_.get()), o.ptr_.get(), n_ * sizeof(T));
    }
    return *this;
  }
  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;
  // Buffers from kHugeBytes on start on a 2 MiB boundary and ask the kernel for transparent huge
  // pages over their whole 2 MiB pages (where THP is "madvise"-only, as on many VMs, only regions
  // that ask get them; the tail stays in 4 KiB pages, so nothing is touched beyond the buffer): a
  // stream over 2 MiB pages takes no TLB miss per 4 KiB and lets the hardware prefetchers run on
  // past 4 KiB boundaries. Measured on Zen 4, a decode step's weights: BENCHMARKS.md.
  static constexpr size_t kHugeBytes = kHugePageBytes;
  void resize(size_t n) {
    if (n == n_) return;
    const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    const bool huge = bytes >= kHugeBytes;
    // posix_memalign: aligned_alloc wants the size a multiple of the alignment.
    void* raw = nullptr;
    if (n && posix_memalign(&raw, huge ? kHugeBytes : 64, bytes) != 0) throw std::bad_alloc();
    T* p = static_cast<T*>(raw);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p && huge) madvise(p, bytes / kHugeBytes * kHugeBytes, MADV_HUGEPAGE);  // advice: may fail
#endif
    if (p) std::memset(static_cast<void*>(p), 0, bytes);
    ptr_.reset(p);
    n_ = n;
  }
  void zero() {
    if (n_) std::memset(static_cast<void*>(ptr_.get()), 0, n_ * sizeof(T));
  }
  T* data() { return ptr_.get(); }
  const T* data() const { return ptr_.get(); }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return ptr_.get()[i]; }
  const T& operator[](size_t i) const { return ptr_.get()[i]; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> ptr_;
  size_t n_ = 0;
};

}  // namespace kl
