// NumPy .npy files (format versions 1.0, 2.0, 3.0), little-endian, C order only: the goldens of the
// reference implementation and our own dumps. Spec: numpy/lib/format.py.
//
// Layout: "\x93NUMPY" | major | minor | header length (u16 for v1, u32 for v2/v3) | header, a Python
// dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } | the array bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace kl {

struct NpyArray {
  // From descr: '<f4' F32, '<f8' F64, '<f2' F16, '<i8' I64, '<i4' I32, '<i2' I16, '|i1' I8,
  // '|u1' U8, '|b1' BOOL. Other descrs (big-endian, unsigned >1 byte, structured...) are errors.
  DType dtype = DType::F32;
  std::vector<int64_t> shape;        // outermost first; empty for a 0-d array
  std::vector<unsigned char> data;   // numel() * dtype_size(dtype) bytes, C order

  int64_t numel() const;
  // All elements as fp32 (from F32, F64, F16, BF16 and the integer types; large ints round).
  std::vector<float> as_f32() const;
  // All elements as int64 (from the integer types and BOOL); floating types are an error.
  std::vector<int64_t> as_i64() const;
};

// Reads a whole .npy file; kl::Error naming the path for a malformed, truncated or unsupported file.
NpyArray read_npy(const std::string& path);
// Pure parser over the bytes of a whole .npy file (also the fuzz entry point); `where` prefixes
// every message. Trailing bytes after the array data are an error.
NpyArray parse_npy(const unsigned char* bytes, size_t size, const std::string& where);
// Writes a version 1.0 file (2.0 if the header needs it) that numpy.load reads; the header is
// padded so the data starts at a multiple of 64, as numpy does.
void write_npy(const std::string& path, DType dtype, const std::vector<int64_t>& shape, const void* data);

}  // namespace kl
