// safetensors header parser, index parser and writer. SafetensorsSet is in safetensors_set.cpp.
#include "format/safetensors.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "format/checked.h"
#include "format/write_file.h"

namespace kl {

namespace {

using Json = nlohmann::json;
// The writer keeps each entry's keys in the usual order (dtype, shape, data_offsets).
using OJson = nlohmann::ordered_json;

uint64_t read_le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

std::string supported_dtypes() {
  std::string s;
  for (int i = 0; i <= int(DType::BOOL); i++) {
    if (i) s += ", ";
    s += dtype_name(DType(i));
  }
  return s;
}

template <class V>
std::string shape_str(const std::vector<V>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); i++) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

// A short description of a bad value for messages. Not dump(): it recurses, and a hostile header
// can nest arrays millions deep.
std::string describe(const Json& v) {
  auto cut = [](std::string s) { return s.size() <= 40 ? s : s.substr(0, 36) + " ..."; };
  if (v.is_array()) {
    std::string s = "an array of " + std::to_string(v.size());
    for (size_t i = 0; i < v.size() && i < 4; i++)
      s += (i ? ", " : ": ") + (v[i].is_primitive() ? cut(v[i].dump()) : std::string(v[i].type_name()));
    return s + (v.size() > 4 ? ", ..." : "");
  }
  return v.is_primitive() ? cut(v.dump()) : std::string(v.type_name());
}

// Collects the keys of the outermost object in the order they appear. (ordered_json would keep the
// order too, but its lookups are linear and the parser's callback mode rescans the parent object
// after each child: both make parsing quadratic in the tensor count.)
struct TopLevelKeys : nlohmann::json_sax<Json> {
  std::vector<std::string> keys;
  int depth = 0;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return ++depth, true; }
  bool end_object() override { return --depth, true; }
  bool start_array(std::size_t) override { return ++depth, true; }
  bool end_array() override { return --depth, true; }
  bool key(string_t& k) override {
    if (depth == 1) keys.push_back(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

// Parses one header entry {"dtype", "shape", "data_offsets"}; `ctx` is "<where>: tensor 'name'".
StTensorInfo parse_entry(const std::string& name, const Json& v, uint64_t data_size,
                         const std::string& ctx) {
  if (!v.is_object()) fail(ctx, ": header entry is not a JSON object");
  StTensorInfo t;
  t.name = name;

  auto dt = v.find("dtype");
  if (dt == v.end()) fail(ctx, ": missing \"dtype\"");
  if (!dt->is_string()) fail(ctx, ": \"dtype\" is not a string");
  const std::string& dname = dt->get_ref<const std::string&>();
  if (!dtype_from_name(dname, &t.dtype))
    fail(ctx, ": unknown dtype ", describe(*dt), " (supported: ", supported_dtypes(), ")");

  auto sh = v.find("shape");
  if (sh == v.end()) fail(ctx, ": missing \"shape\"");
  if (!sh->is_array()) fail(ctx, ": \"shape\" is not an array");
  for (const Json& d : *sh) {
    if (!d.is_number_integer()) fail(ctx, ": \"shape\" must hold integers, got ", d.type_name());
    if (d.is_number_unsigned()) {
      uint64_t u = d.get<uint64_t>();
      if (u > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(ctx, ": dimension ", u, " in \"shape\" overflows int64");
      t.shape.push_back(int64_t(u));
    } else {
      int64_t s = d.get<int64_t>();
      if (s < 0) fail(ctx, ": negative dimension ", s, " in \"shape\"");
      t.shape.push_back(s);
    }
  }
  int64_t numel = 0;
  uint64_t nbytes = 0;
  if (!detail::shape_bytes(t.shape, dtype_size(t.dtype), &numel, &nbytes))
    fail(ctx, ": element count of shape ", shape_str(t.shape), " overflows");

  auto off = v.find("data_offsets");
  if (off == v.end()) fail(ctx, ": missing \"data_offsets\"");
  if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    fail(ctx, ": \"data_offsets\" must be [begin, end] with non-negative integers, got ", describe(*off));
  t.begin = (*off)[0].get<uint64_t>();
  t.end = (*off)[1].get<uint64_t>();
  if (t.begin > t.end) fail(ctx, ": data_offsets [", t.begin, ", ", t.end, "] have begin > end");
  if (t.end - t.begin != nbytes)
    fail(ctx, ": shape ", shape_str(t.shape), " of ", dtype_name(t.dtype), " needs ", nbytes,
         " bytes but data_offsets [", t.begin, ", ", t.end, "] span ", t.end - t.begin);
  if (t.end > data_size)
    fail(ctx, ": data_offsets [", t.begin, ", ", t.end, "] go beyond the data section (", data_size,
         " bytes); is the file truncated?");
  return t;
}

}  // namespace

StHeader parse_safetensors(const unsigned char* bytes, size_t size, const std::string& where) {
  if (size < 8)
    fail(where, ": not a safetensors file: only ", size, " bytes, less than the 8-byte header length");
  const uint64_t n = read_le64(bytes);
  if (n > size - 8)
    fail(where, ": safetensors header length ", n, " goes beyond the end of the file (", size - 8,
         " bytes follow the length field); truncated or not a safetensors file");
  if (n > kStMaxHeaderBytes)
    fail(where, ": safetensors header length ", n, " exceeds the limit of ", kStMaxHeaderBytes, " bytes");

  const char* text = reinterpret_cast<const char*>(bytes + 8);
  Json j;
  try {
    j = Json::parse(text, text + n);
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": safetensors header is not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail(where, ": safetensors header is not a JSON object (got ", j.type_name(), ")");
  // json objects are sorted maps; a second, DOM-less pass recovers the header order.
  TopLevelKeys keys;
  Json::sax_parse(text, text + n, &keys);

  StHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = size - h.data_start;
  std::set<std::string_view> done;  // a duplicated key appears once, where it first appeared
  for (const std::string& key : keys.keys) {
    if (!done.insert(key).second) continue;
    const Json& val = j.at(key);
    if (key == "__metadata__") {
      if (!val.is_object()) fail(where, ": \"__metadata__\" is not a JSON object");
      for (const auto& [mk, mv] : val.items()) {
        if (!mv.is_string())
          fail(where, ": \"__metadata__\" value of '", mk, "' is not a string (got ", mv.type_name(), ")");
        h.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(key, val, data_size, detail::concat(where, ": tensor '", key, "'")));
  }

  // Overlaps: sort by begin and compare each tensor with the furthest end seen so far.
  // Empty tensors own no bytes and cannot overlap.
  std::vector<const StTensorInfo*> by_offset;
  for (const StTensorInfo& t : h.tensors)
    if (t.end > t.begin) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const StTensorInfo* a, const StTensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const StTensorInfo* furthest = nullptr;
  for (const StTensorInfo* t : by_offset) {
    if (furthest && t->begin < furthest->end)
      fail(where, ": tensors '", furthest->name, "' [", furthest->begin, ", ", furthest->end, ") and '",
           t->name, "' [", t->begin, ", ", t->end, ") overlap in the data section");
    if (!furthest || t->end > furthest->end) furthest = t;
  }
  return h;
}

std::map<std::string, std::string> parse_safetensors_index(std::string_view text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": index is not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail(where, ": index is not a JSON object (got ", j.type_name(), ")");
  auto wm = j.find("weight_map");
  if (wm == j.end()) fail(where, ": index has no \"weight_map\"");
  if (!wm->is_object()) fail(where, ": \"weight_map\" is not a JSON object (got ", wm->type_name(), ")");

  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string())
      fail(where, ": \"weight_map\" value of '", tensor, "' is not a string (got ", shard.type_name(), ")");
    const std::string& s = shard.get_ref<const std::string&>();
    // Shards live next to the index: a name that could point elsewhere is refused.
    if (s.empty() || s.find('/') != std::string::npos || s.find('\\') != std::string::npos ||
        s.find("..") != std::string::npos || s.find('\0') != std::string::npos)
      fail(where, ": tensor '", tensor, "' names shard '", s,
           "', which is not a plain file name in the index's directory");
    out.emplace(tensor, s);
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // The header is assembled entry by entry (ordered_json lookups are linear, so building one big
  // object would be quadratic in the tensor count).
  std::string text = "{";
  std::set<std::string> seen;
  std::vector<size_t> sizes;
  uint64_t offset = 0;
  try {
    if (!metadata.empty()) text += "\"__metadata__\":" + OJson(metadata).dump();
    for (const StWriteTensor& t : tensors) {
      if (t.name == "__metadata__") fail(path, ": cannot write a tensor named \"__metadata__\" (reserved)");
      if (!seen.insert(t.name).second) fail(path, ": tensor '", t.name, "' given twice");
      int64_t numel = 0;
      uint64_t nbytes = 0;
      if (!detail::shape_bytes(t.shape, dtype_size(t.dtype), &numel, &nbytes))
        fail(path, ": tensor '", t.name, "': bad shape ", shape_str(t.shape), " (negative or overflowing)");
      if (nbytes && !t.data) fail(path, ": tensor '", t.name, "' has no data");
      if (offset > std::numeric_limits<uint64_t>::max() - nbytes) fail(path, ": total size overflows");
      OJson entry{{"dtype", std::string(dtype_name(t.dtype))},
                  {"shape", t.shape},
                  {"data_offsets", {offset, offset + nbytes}}};
      if (text.size() > 1) text += ',';
      text += OJson(t.name).dump() + ":" + entry.dump();
      offset += nbytes;
      sizes.push_back(size_t(nbytes));
    }
  } catch (const nlohmann::json::exception& e) {  // e.g. a name that is not valid UTF-8
    fail(path, ": cannot encode the safetensors header: ", e.what());
  }
  text += '}';
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts at a multiple of 8

  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
  std::vector<detail::ByteRange> parts{{len, 8}, {text.data(), text.size()}};
  for (size_t i = 0; i < tensors.size(); i++) parts.push_back({tensors[i].data, sizes[i]});
  detail::write_file(path, parts);
}

}  // namespace kl
