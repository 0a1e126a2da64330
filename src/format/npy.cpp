#include "format/npy.h"

#include <bit>
#include <cstring>
#include <limits>
#include <string_view>

#include "core/error.h"
#include "core/mapped_file.h"
#include "format/checked.h"
#include "format/write_file.h"

namespace kl {

static_assert(std::endian::native == std::endian::little, "npy: '<' data is read in place");

namespace {

constexpr unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

struct DescrInfo {
  const char* code;  // kind + size, without the byte-order character
  DType dtype;
};
constexpr DescrInfo kDescrs[] = {
    {"f4", DType::F32}, {"f8", DType::F64}, {"f2", DType::F16}, {"i8", DType::I64}, {"i4", DType::I32},
    {"i2", DType::I16}, {"i1", DType::I8},  {"u1", DType::U8},  {"b1", DType::BOOL},
};

std::string supported_descrs() {
  std::string s;
  for (const DescrInfo& d : kDescrs) {
    if (!s.empty()) s += ", ";
    s += d.code[1] == '1' ? '|' : '<';  // appended piecewise: GCC 12 warns (-Wrestrict) on "<" + string
    s += d.code;
  }
  return s;
}

DType dtype_from_descr(const std::string& descr, const std::string& where) {
  if (!descr.empty()) {
    const char order = descr[0];
    const std::string code = descr.substr(1);
    for (const DescrInfo& d : kDescrs) {
      if (code != d.code) continue;
      // One-byte types have no byte order; wider ones must be little-endian ('=' is native, and
      // the build asserts a little-endian host).
      if (dtype_size(d.dtype) == 1 ? (order == '|' || order == '<' || order == '>' || order == '=')
                                   : (order == '<' || order == '='))
        return d.dtype;
      if (order == '>') fail(where, ": big-endian descr '", descr, "' is not supported");
    }
  }
  fail(where, ": unsupported descr '", descr, "' (supported: ", supported_descrs(), ")");
}

// The header is a Python dict literal written by numpy's repr(); this parses the subset numpy
// writes: string keys, and values that are strings, True/False, or tuples of integers.
class HeaderParser {
 public:
  HeaderParser(std::string_view s, const std::string& where) : s_(s), where_(where) {}

  void parse(std::string* descr, bool* fortran, std::vector<int64_t>* shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      const std::string key = string_lit();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (peek() == '[') err("structured dtypes (descr is a list) are not supported");
        once(&have_descr, key);
        *descr = string_lit();
      } else if (key == "fortran_order") {
        once(&have_fortran, key);
        *fortran = bool_lit();
      } else if (key == "shape") {
        once(&have_shape, key);
        *shape = int_tuple();
      } else {
        err("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        pos_++;
        continue;
      }
      if (peek() != '}') err("expected ',' or '}'");
    }
    pos_++;  // '}'
    skip_ws();
    if (pos_ != s_.size()) err("unexpected text after the header dict");
    if (!have_descr) err("missing 'descr'");
    if (!have_fortran) err("missing 'fortran_order'");
    if (!have_shape) err("missing 'shape'");
  }

 private:
  [[noreturn]] void err(const std::string& what) const {
    fail(where_, ": malformed .npy header (at offset ", pos_, "): ", what);
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r'))
      pos_++;
  }
  void expect(char c) {
    if (peek() != c) err(std::string("expected '") + c + "'");
    pos_++;
  }
  void once(bool* seen, const std::string& key) {
    if (*seen) err("duplicate key '" + key + "'");
    *seen = true;
  }
  std::string string_lit() {
    const char q = peek();
    if (q != '\'' && q != '"') err("expected a quoted string");
    const size_t start = ++pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\') err("escapes in strings are not supported");
      pos_++;
    }
    if (pos_ == s_.size()) err("unterminated string");
    return std::string(s_.substr(start, pos_++ - start));
  }
  bool bool_lit() {
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    err("expected True or False");
  }
  std::vector<int64_t> int_tuple() {
    expect('(');
    std::vector<int64_t> out;
    while (true) {
      skip_ws();
      if (peek() == ')') break;
      if (peek() == '-') err("negative dimension in 'shape'");
      if (peek() < '0' || peek() > '9') err("expected an integer in 'shape'");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = peek() - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) err("dimension in 'shape' overflows int64");
        v = v * 10 + digit;
        pos_++;
      }
      if (peek() == 'L' || peek() == 'l') pos_++;  // Python 2 long, as old numpy wrote it
      out.push_back(v);
      skip_ws();
      if (peek() == ',') {
        pos_++;
        continue;
      }
      if (peek() != ')') err("expected ',' or ')' in 'shape'");
    }
    pos_++;  // ')'
    return out;
  }

  std::string_view s_;
  const std::string& where_;
  size_t pos_ = 0;
};

std::string shape_tuple(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

template <class T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<float> NpyArray::as_f32() const {
  const size_t n = data.size() / dtype_size(dtype);
  std::vector<float> out(n);
  const unsigned char* p = data.data();
  for (size_t i = 0; i < n; i++) {
    switch (dtype) {
      case DType::F32: out[i] = load<float>(p + 4 * i); break;
      case DType::F64: out[i] = float(load<double>(p + 8 * i)); break;
      case DType::F16: out[i] = f16_to_f32(load<uint16_t>(p + 2 * i)); break;
      case DType::BF16: out[i] = bf16_to_f32(load<uint16_t>(p + 2 * i)); break;
      case DType::I64: out[i] = float(load<int64_t>(p + 8 * i)); break;
      case DType::I32: out[i] = float(load<int32_t>(p + 4 * i)); break;
      case DType::I16: out[i] = float(load<int16_t>(p + 2 * i)); break;
      case DType::I8: out[i] = float(load<int8_t>(p + i)); break;
      case DType::U8: out[i] = float(p[i]); break;
      case DType::BOOL: out[i] = p[i] ? 1.0f : 0.0f; break;
    }
  }
  return out;
}

std::vector<int64_t> NpyArray::as_i64() const {
  if (dtype == DType::F32 || dtype == DType::F64 || dtype == DType::F16 || dtype == DType::BF16)
    fail("npy: cannot read ", dtype_name(dtype), " data as integers");
  const size_t n = data.size() / dtype_size(dtype);
  std::vector<int64_t> out(n);
  const unsigned char* p = data.data();
  for (size_t i = 0; i < n; i++) {
    switch (dtype) {
      case DType::I64: out[i] = load<int64_t>(p + 8 * i); break;
      case DType::I32: out[i] = load<int32_t>(p + 4 * i); break;
      case DType::I16: out[i] = load<int16_t>(p + 2 * i); break;
      case DType::I8: out[i] = load<int8_t>(p + i); break;
      case DType::U8: out[i] = p[i]; break;
      case DType::BOOL: out[i] = p[i] ? 1 : 0; break;
      default: break;  // floating types refused above
    }
  }
  return out;
}

NpyArray parse_npy(const unsigned char* bytes, size_t size, const std::string& where) {
  if (size < 10 || std::memcmp(bytes, kMagic, 6) != 0)
    fail(where, ": not a .npy file (", size < 10 ? "too short for the header" : "bad magic", ")");
  const int major = bytes[6], minor = bytes[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    fail(where, ": unsupported .npy format version ", major, ".", minor, " (supported: 1.0, 2.0, 3.0)");
  size_t header_len, header_start;
  if (major == 1) {
    header_len = size_t(bytes[8]) | size_t(bytes[9]) << 8;
    header_start = 10;
  } else {
    if (size < 12) fail(where, ": truncated .npy file: ", size, " bytes");
    header_len = size_t(bytes[8]) | size_t(bytes[9]) << 8 | size_t(bytes[10]) << 16 | size_t(bytes[11]) << 24;
    header_start = 12;
  }
  if (header_len > size - header_start)
    fail(where, ": truncated .npy file: header of ", header_len, " bytes but only ", size - header_start,
         " bytes follow");

  std::string descr;
  bool fortran = false;
  NpyArray a;
  std::string_view header(reinterpret_cast<const char*>(bytes + header_start), header_len);
  HeaderParser(header, where).parse(&descr, &fortran, &a.shape);
  a.dtype = dtype_from_descr(descr, where);
  if (fortran) fail(where, ": fortran_order arrays are not supported (save with C order)");

  int64_t numel = 0;
  uint64_t nbytes = 0;
  if (!detail::shape_bytes(a.shape, dtype_size(a.dtype), &numel, &nbytes))
    fail(where, ": element count of shape ", shape_tuple(a.shape), " overflows");
  const size_t data_start = header_start + header_len;
  const size_t avail = size - data_start;
  if (nbytes > avail)
    fail(where, ": truncated .npy file: shape ", shape_tuple(a.shape), " of '", descr, "' needs ", nbytes,
         " bytes of data but only ", avail, " are present");
  if (nbytes < avail)
    fail(where, ": .npy file has ", avail - nbytes, " unexpected bytes after the array data");
  a.data.assign(bytes + data_start, bytes + size);
  return a;
}

NpyArray read_npy(const std::string& path) {
  MappedFile f(path);
  return parse_npy(f.data(), f.size(), path);
}

void write_npy(const std::string& path, DType dtype, const std::vector<int64_t>& shape, const void* data) {
  const char* code = nullptr;
  for (const DescrInfo& d : kDescrs)
    if (d.dtype == dtype) code = d.code;
  if (!code) fail(path, ": ", dtype_name(dtype), " has no .npy descr");
  int64_t numel = 0;
  uint64_t nbytes = 0;
  if (!detail::shape_bytes(shape, dtype_size(dtype), &numel, &nbytes))
    fail(path, ": bad shape ", shape_tuple(shape), " (negative or overflowing)");
  if (nbytes && !data) fail(path, ": no data for shape ", shape_tuple(shape));

  std::string descr(1, dtype_size(dtype) == 1 ? '|' : '<');
  descr += code;
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  // numpy pads with spaces and a final '\n' so the data starts at a multiple of 64.
  size_t prefix = 10;
  if ((header.size() + 1 + prefix + 63) / 64 * 64 - prefix > 0xffff) prefix = 12;  // needs version 2.0
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(prefix == 10 ? 1 : 2), 0};
  for (size_t i = 0; i < prefix - 8; i++) pre[8 + i] = static_cast<unsigned char>(header.size() >> (8 * i));
  detail::write_file(path, {{pre, prefix}, {header.data(), header.size()}, {data, size_t(nbytes)}});
}

}  // namespace kl
