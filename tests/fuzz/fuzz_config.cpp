// Fuzzes the config.json parser and checker: any input either parses into a consistent config or
// raises kl::Error; never a crash, hang or sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    kl::KimiConfig c = kl::parse_config(text, "fuzz/config.json");
    // A config that parses must describe every layer.
    if (c.mixer.size() != size_t(c.num_hidden_layers) || c.ffn.size() != size_t(c.num_hidden_layers)) __builtin_trap();
  } catch (const kl::Error&) {
  }
  return 0;
}
