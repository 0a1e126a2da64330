// Fuzzes the safetensors header parser (the whole file as bytes) and the index parser (the same
// bytes as JSON text). Any outcome but success or kl::Error is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "format/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    kl::StHeader h = kl::parse_safetensors(data, size, "fuzz");
    // What the parser accepts must be safe to use: every tensor lies inside the input.
    for (const kl::StTensorInfo& t : h.tensors) {
      if (t.begin > t.end || t.end > size - h.data_start) __builtin_trap();
    }
  } catch (const kl::Error&) {
  }
  try {
    kl::parse_safetensors_index(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const kl::Error&) {
  }
  return 0;
}
