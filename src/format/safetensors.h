// safetensors: parse, validate, map and write (https://github.com/huggingface/safetensors).
//
// File layout: u64 little-endian N | N bytes of JSON header | data section. The header is an object
// {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {k: v}}
// with offsets relative to the start of the data section. Every check on the header happens in
// parse_safetensors(), which sees only bytes, so the fuzzer covers all of it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.h"
#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/tensor.h"

namespace kl {

struct StTensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;    // outermost first
  uint64_t begin = 0, end = 0;   // byte offsets relative to the start of the data section
};

struct StHeader {
  std::vector<StTensorInfo> tensors;            // in header order
  std::map<std::string, std::string> metadata;  // "__metadata__" (string values only)
  uint64_t data_start = 0;                      // = 8 + header length
};

// The largest header we accept, as the reference implementation (MAX_HEADER_SIZE): a bound on
// what a corrupt length field can make us parse.
constexpr uint64_t kStMaxHeaderBytes = 100'000'000;

// Pure parser over the bytes of a whole .safetensors file (also the fuzz entry point). Throws
// kl::Error, prefixed by `where` (usually the path), for: a file shorter than 8 bytes, a header
// length beyond the file, a header that is not a JSON object, an entry that is not an object,
// missing or ill-typed "dtype" / "shape" / "data_offsets", an unknown dtype, negative dims, an
// element count or byte size that overflows, a byte length != numel * dtype_size, offsets outside
// the data section, begin > end, and overlapping tensors. Gaps between tensors are allowed.
StHeader parse_safetensors(const unsigned char* bytes, size_t size, const std::string& where);

// Parses model.safetensors.index.json text: {"metadata": {...}, "weight_map": {tensor: shard}}.
// Throws for bad JSON, a missing or non-object weight_map, non-string values, and shard names
// that could leave the directory ('/', '\\', "..", empty). Returns tensor name -> shard file name.
std::map<std::string, std::string> parse_safetensors_index(std::string_view json, const std::string& where);

// A set of memory-mapped safetensors files: one file, or the shards named by an index.
// Views point into the mappings and stay valid for the lifetime of the set (moving the set keeps
// them valid). One exception to "never copied": a tensor whose data is not aligned to its element
// size inside the mapping (possible when the header length is not a multiple of 8) is copied once
// into an owned 64-byte aligned buffer, so every view handed out is aligned for its dtype.
class SafetensorsSet {
 public:
  static constexpr const char* kIndexName = "model.safetensors.index.json";
  static constexpr const char* kSingleName = "model.safetensors";

  // `path` is a directory (uses model.safetensors.index.json if present, else model.safetensors;
  // neither -> error saying so), a path to one .safetensors file, or a path to an *.index.json.
  // Checks, beyond parse_safetensors(): every shard named by the index exists; every tensor named
  // by the index is in the shard it names, and every tensor of a shard is listed for that shard;
  // no tensor appears in two files; at most 4 dims (what TensorView holds). `access`: how the
  // weight files get into memory (core/mapped_file.h); the index is always mapped.
  static SafetensorsSet open(const std::string& path, FileAccess access = FileAccess::Map);
  // True if `dir` holds model.safetensors.index.json or model.safetensors.
  static bool has_weights(const std::string& dir);

  SafetensorsSet() = default;
  SafetensorsSet(SafetensorsSet&&) noexcept = default;
  SafetensorsSet& operator=(SafetensorsSet&&) noexcept = default;
  SafetensorsSet(const SafetensorsSet&) = delete;  // views point into this set's mappings and copies
  SafetensorsSet& operator=(const SafetensorsSet&) = delete;

  struct Entry {
    TensorView view;
    std::string file;  // path of the file the tensor was read from
  };
  const Entry* find(const std::string& name) const;  // nullptr if absent
  std::vector<std::string> names() const;            // sorted
  size_t size() const { return entries_.size(); }    // number of tensors
  size_t total_bytes() const;                        // sum of tensor byte sizes
  // Paths of the mapped files, in the order they were opened.
  std::vector<std::string> files() const;
  // "__metadata__" of the single file, or of the first shard (sorted by name) of an index.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  void add_file(const std::string& file_path, const std::map<std::string, std::string>* index,
                const std::string& shard_name, const std::string& index_path, FileAccess access);

  std::vector<MappedFile> files_;
  std::vector<Buffer<unsigned char>> realigned_;  // owned copies of misaligned tensors
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

struct StWriteTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * dtype_size bytes, C order
};

// Writes a valid safetensors file: header (metadata first, then tensors in the given order) padded
// with spaces so the data section starts at a multiple of 8, then the tensors' bytes, contiguous.
// Throws kl::Error naming the path for duplicate or reserved names, bad shapes, I/O errors.
void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace kl
