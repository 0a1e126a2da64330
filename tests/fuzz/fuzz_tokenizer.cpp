// Fuzzes the Kimi tokenizer with the real vocabulary:
//  - input that is valid UTF-8 must round-trip: decode(encode(x)) == x, with special tokens
//    both plain and allowed (a special id decodes to its own name); invalid UTF-8 must be
//    refused with a kl::Error;
//  - the input bytes, read as token ids, go through the streaming decoder: every piece it
//    returns is valid UTF-8 and the pieces add up to decode(ids);
//  - the tool-call parser either parses the input or raises kl::Error.
// The vocabulary is tests/data/tokenizer/kimi/tiktoken.model, found next to this source file,
// or the file named by $KL_TOKENIZER_VOCAB.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tool_calls.h"
#include "tokenizer/utf8.h"

namespace {

std::unique_ptr<kl::Tokenizer> g_tok;  // loaded once; the tokenizer itself holds no mutable state

std::string vocab_path() {
  if (const char* env = std::getenv("KL_TOKENIZER_VOCAB")) return env;
  std::string here = __FILE__;  // absolute under CMake: <repo>/tests/fuzz/fuzz_tokenizer.cpp
  here.resize(here.rfind('/') + 1);
  return here + "../data/tokenizer/kimi/tiktoken.model";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  try {
    kl::Vocab v = kl::Vocab::load_tiktoken(vocab_path());
    const auto base = kl::TokenId(v.size());
    g_tok = std::make_unique<kl::Tokenizer>(std::move(v), kl::SpecialTokens::kimi_default(base));
  } catch (const kl::Error& e) {
    std::fprintf(stderr, "fuzz_tokenizer: %s (set KL_TOKENIZER_VOCAB)\n", e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const kl::Tokenizer& tok = *g_tok;
  const std::string text(reinterpret_cast<const char*>(data), size);

  if (kl::utf8::is_valid(text)) {
    if (tok.decode(tok.encode(text, false)) != text) __builtin_trap();
    if (tok.decode(tok.encode(text, true)) != text) __builtin_trap();
  } else {
    bool refused = false;
    try {
      tok.encode(text, false);
    } catch (const kl::Error&) {
      refused = true;
    }
    if (!refused) __builtin_trap();
  }

  // Two bytes per id: 0..65535 covers the single-byte tokens (ranks 0..255) and many longer
  // ones; a leading 0xFF byte picks a special id instead.
  std::vector<kl::TokenId> ids;
  for (size_t i = 0; i + 1 < size; i += 2)
    ids.push_back(data[i] == 0xFF ? kl::TokenId(163584 + data[i + 1]) : kl::TokenId(data[i] << 8 | data[i + 1]));
  kl::StreamDecoder stream(tok);
  std::string streamed;
  for (const kl::TokenId id : ids) {
    const std::string piece = stream.feed(id);
    if (!kl::utf8::is_valid(piece)) __builtin_trap();
    streamed += piece;
  }
  const std::string tail = stream.finish();
  if (!kl::utf8::is_valid(tail)) __builtin_trap();
  if (streamed + tail != tok.decode(ids)) __builtin_trap();

  try {
    kl::parse_tool_calls(text);
  } catch (const kl::Error&) {
  }
  return 0;
}
