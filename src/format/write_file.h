// Writes a file from a few byte ranges, reporting failures as kl::Error naming the path
// (format/ internal).
#pragma once
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include "core/error.h"

namespace kl::detail {

struct ByteRange {
  const void* data;
  size_t size;
};

template <class Ranges>
void write_file(const std::string& path, const Ranges& parts) {
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> f(std::fopen(path.c_str(), "wb"));
  if (!f) fail(path, ": cannot create: ", std::strerror(errno));
  for (const ByteRange& r : parts) {
    if (r.size && std::fwrite(r.data, 1, r.size, f.get()) != r.size)
      fail(path, ": write failed: ", std::strerror(errno));
  }
  if (std::fclose(f.release()) != 0) fail(path, ": write failed: ", std::strerror(errno));
}

inline void write_file(const std::string& path, std::initializer_list<ByteRange> parts) {
  write_file<std::initializer_list<ByteRange>>(path, parts);
}

}  // namespace kl::detail
