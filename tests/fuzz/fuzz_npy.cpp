// Fuzzes the .npy parser and the conversions of what it accepts. Any outcome but success or
// kl::Error is a finding.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "format/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    kl::NpyArray a = kl::parse_npy(data, size, "fuzz");
    if (a.data.size() != size_t(a.numel()) * kl::dtype_size(a.dtype)) __builtin_trap();
    (void)a.as_f32();
    (void)a.as_i64();  // throws for floating types
  } catch (const kl::Error&) {
  }
  return 0;
}
