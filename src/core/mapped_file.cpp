#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/buffer.h"
#include "core/error.h"

namespace kl {

MappedFile::MappedFile(const std::string& path, FileAccess access) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(path, ": cannot stat: ", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  size_ = size_t(st.st_size);
  if (size_ > 0 && access == FileAccess::Read) {
    try {
      read_whole(fd);
    } catch (...) {
      ::close(fd);
      throw;
    }
  } else if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail(path, ": cannot map ", size_, " bytes: ", std::strerror(e));
    }
    data_ = static_cast<const unsigned char*>(p);
    mapped_ = size_;
  }
  ::close(fd);
}

void MappedFile::read_whole(int fd) {
  constexpr size_t kHuge = kHugePageBytes;
  const size_t want = (size_ + kHuge - 1) / kHuge * kHuge;
  // Anonymous memory starting on a 2 MiB boundary: map 2 MiB more, unmap the ends around it.
  void* raw = ::mmap(nullptr, want + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) fail(path_, ": cannot allocate ", size_, " bytes to read it into: ", std::strerror(errno));
  const uintptr_t r = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t a = (r + kHuge - 1) / kHuge * kHuge;
  if (a > r) ::munmap(raw, a - r);
  if (r + want + kHuge > a + want) ::munmap(reinterpret_cast<void*>(a + want), r + want + kHuge - (a + want));
  unsigned char* p = reinterpret_cast<unsigned char*>(a);
  data_ = p;
  mapped_ = want;
#if defined(MADV_HUGEPAGE)
  ::madvise(p, want, MADV_HUGEPAGE);  // advice: without it (or without THP) 4 KiB pages
#endif
  constexpr size_t kChunk = size_t(64) << 20;
  for (size_t off = 0; off < size_;) {
    const size_t n = std::min(kChunk, size_ - off);
    const ssize_t got = ::pread(fd, p + off, n, off_t(off));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int e = errno;
      reset();
      fail(path_, ": cannot read at byte ", off, ": ", std::strerror(e));
    }
    if (got == 0) {
      reset();
      fail(path_, ": the file ended at byte ", off, " while reading ", size_, " bytes (changed while loading?)");
    }
#if defined(POSIX_FADV_DONTNEED)
    ::posix_fadvise(fd, off_t(off), off_t(got), POSIX_FADV_DONTNEED);  // one copy in RAM, not two
#endif
    off += size_t(got);
  }
  ::mprotect(p, want, PROT_READ);  // read-only, as the mapping is
}

MappedFile::~MappedFile() { reset(); }

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      mapped_(std::exchange(o.mapped_, 0)),
      path_(std::move(o.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, 0);
    path_ = std::move(o.path_);
  }
  return *this;
}

void MappedFile::reset() {
  if (data_) ::munmap(const_cast<unsigned char*>(data_), mapped_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = 0;
}

}  // namespace kl
