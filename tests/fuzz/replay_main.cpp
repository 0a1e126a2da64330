// Runs a fuzz target's LLVMFuzzerTestOneInput over every file of its seed corpus, without
// libFuzzer, so the normal (and sanitizer) test builds compile and exercise the fuzz sources.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int n = 0;
  for (int i = 1; i < argc; i++) {
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(argv[i])) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.push_back(argv[i]);
    }
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      // Every prefix too: truncated inputs are the common malformed case.
      for (size_t k = 0; k < bytes.size(); k += 1 + bytes.size() / 64) LLVMFuzzerTestOneInput(bytes.data(), k);
      n++;
    }
  }
  std::printf("replayed %d seed file(s)\n", n);
  return n > 0 ? 0 : 1;
}
