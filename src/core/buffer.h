// Owned, 64-byte aligned fp32 buffers for activations and state. Sized once, reused.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace kl {

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
  void resize(size_t n) {
    if (n == n_) return;
    size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    T* p = n ? static_cast<T*>(std::aligned_alloc(64, bytes ? bytes : 64)) : nullptr;
    if (n && !p) throw std::bad_alloc();
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
