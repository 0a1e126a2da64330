// A whole file's bytes in memory, read-only (RAII).
#pragma once
#include <cstddef>
#include <string>

namespace kl {

// How the bytes get there. Map (the default): a mapping of the page cache; nothing is read until
// used, processes share one copy, and a file larger than RAM still works. Read: read whole into
// private memory on 2 MiB pages where the system allows (transparent huge pages), dropping the
// file from the page cache behind it: a slower start and the file's size in RAM, but the bytes
// stay resident, and streams over 2 MiB pages take no TLB miss per 4 KiB page and the hardware
// prefetchers run on past 4 KiB boundaries (decode reads every weight byte once per token; a
// page cache with large folios may already read as fast: BENCHMARKS.md).
enum class FileAccess { Map, Read };

class MappedFile {
 public:
  MappedFile() = default;
  // Throws kl::Error naming the path.
  explicit MappedFile(const std::string& path, FileAccess access = FileAccess::Map);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void reset();
  void read_whole(int fd);  // FileAccess::Read
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // bytes of the mapping at data_ (>= size_ when read into memory)
  std::string path_;
};

}  // namespace kl
