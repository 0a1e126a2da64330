// SafetensorsSet: maps one safetensors file or the shards of an index and binds tensor views.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <set>
#include <string_view>

#include "core/error.h"
#include "format/safetensors.h"

namespace kl {

namespace fs = std::filesystem;

namespace {

bool file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

bool SafetensorsSet::has_weights(const std::string& dir) {
  return file_exists(fs::path(dir) / kIndexName) || file_exists(fs::path(dir) / kSingleName);
}

SafetensorsSet SafetensorsSet::open(const std::string& path, FileAccess access) {
  SafetensorsSet set;
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) {
    if (file_exists(fs::path(path) / kIndexName)) {
      file = (fs::path(path) / kIndexName).string();
    } else if (file_exists(fs::path(path) / kSingleName)) {
      file = (fs::path(path) / kSingleName).string();
    } else {
      fail(path, ": no weights in this directory: neither ", kIndexName, " nor ", kSingleName, " exists");
    }
  }
  if (!ends_with(file, ".index.json")) {
    set.add_file(file, nullptr, "", "", access);
    return set;
  }

  MappedFile index_file(file);
  std::string_view text(reinterpret_cast<const char*>(index_file.data()), index_file.size());
  const std::map<std::string, std::string> index = parse_safetensors_index(text, file);
  if (index.empty()) fail(file, ": \"weight_map\" is empty");
  const fs::path dir = fs::path(file).parent_path();
  std::set<std::string> shards;  // sorted, so the load order does not depend on the index order
  for (const auto& [tensor, shard] : index) shards.insert(shard);
  for (const std::string& shard : shards) {
    const fs::path shard_path = dir / shard;
    if (!file_exists(shard_path))
      fail(file, ": shard '", shard, "' named in the index is missing (", shard_path.string(), ")");
    set.add_file(shard_path.string(), &index, shard, file, access);
  }
  for (const auto& [tensor, shard] : index) {
    if (!set.entries_.count(tensor))
      fail(file, ": tensor '", tensor, "' is listed in shard '", shard, "', which does not contain it");
  }
  return set;
}

// Maps `file_path`, validates its header and adds its tensors. With an index, every tensor of the
// file must be listed for `shard_name`.
void SafetensorsSet::add_file(const std::string& file_path, const std::map<std::string, std::string>* index,
                              const std::string& shard_name, const std::string& index_path,
                              FileAccess access) {
  MappedFile mf(file_path, access);
  const StHeader h = parse_safetensors(mf.data(), mf.size(), file_path);
  for (const StTensorInfo& t : h.tensors) {
    if (index) {
      auto it = index->find(t.name);
      if (it == index->end())
        fail(file_path, ": tensor '", t.name, "' is not listed in ", index_path);
      if (it->second != shard_name)
        fail(file_path, ": tensor '", t.name, "' is in this shard but ", index_path, " places it in '",
             it->second, "'");
    }
    if (auto prev = entries_.find(t.name); prev != entries_.end())
      fail(file_path, ": tensor '", t.name, "' is also in ", prev->second.file);
    if (t.shape.size() > 4)
      fail(file_path, ": tensor '", t.name, "' has ", t.shape.size(), " dims; at most 4 are supported");

    Entry e;
    e.file = file_path;
    e.view.dtype = t.dtype;
    e.view.ndim = int(t.shape.size());
    for (size_t i = 0; i < t.shape.size(); i++) e.view.shape[i] = t.shape[i];
    const unsigned char* p = mf.data() + h.data_start + t.begin;
    const size_t nbytes = size_t(t.end - t.begin);
    if (nbytes && reinterpret_cast<uintptr_t>(p) % dtype_size(t.dtype) != 0) {
      // The header length put this tensor off its element alignment: keep an aligned copy
      // (see the class comment) rather than hand out a view kernels cannot load from.
      Buffer<unsigned char> copy(nbytes);
      std::memcpy(copy.data(), p, nbytes);
      p = copy.data();
      realigned_.push_back(std::move(copy));
    }
    e.view.data = p;
    entries_.emplace(t.name, std::move(e));
  }
  if (files_.empty()) metadata_ = h.metadata;
  files_.push_back(std::move(mf));  // moving keeps the mapping (and the views) in place
}

const SafetensorsSet::Entry* SafetensorsSet::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

size_t SafetensorsSet::total_bytes() const {
  size_t n = 0;
  for (const auto& [name, e] : entries_) n += e.view.nbytes();
  return n;
}

std::vector<std::string> SafetensorsSet::files() const {
  std::vector<std::string> out;
  for (const MappedFile& f : files_) out.push_back(f.path());
  return out;
}

}  // namespace kl
