// Text generation on a session: sampling, streaming decoded text, stop tokens and stop
// strings (matched across token boundaries and never emitted).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace kl {

struct GenerationRequest {
  std::vector<int32_t> prompt;  // new tokens to feed before generating (may be empty if the session has some)
  SamplingParams sampling;
  int64_t max_tokens = 256;
  std::vector<int32_t> stop_ids;         // e.g. <|im_end|>
  std::vector<std::string> stop_strings;  // cut before the first occurrence
};

struct GenerationResult {
  std::vector<int32_t> ids;  // generated ids (a final stop id included)
  std::string text;          // emitted text (stop string and what follows excluded)
  std::string stop_reason;   // "stop_token", "stop_string", "max_tokens"
  int64_t prompt_tokens = 0;
  double prompt_seconds = 0, gen_seconds = 0;
};

// Feeds the prompt, then samples until a stop token, max_tokens, or on_token returning false
// (stop_reason "stopped"). Afterwards the session holds the prompt and every generated token
// except a final stop id. Ids only: no tokenizer needed.
GenerationResult generate(Session& s, const GenerationRequest& req, const std::function<bool(int32_t)>& on_token,
                          const Progress& progress = nullptr);

// Text generation: as generate(), decoding as it goes. on_text receives text as soon as it is safe to
// show (complete UTF-8, not possibly the start of a stop string). Afterwards the session holds
// the prompt and every generated token except a final stop id.
GenerationResult generate_text(Session& s, const Tokenizer& tok, const GenerationRequest& req,
                               const std::function<void(std::string_view)>& on_text,
                               const Progress& progress = nullptr);

// Stop-string filter used by generate_text: push text in, get out what can be shown.
class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Returns the text that is now safe to emit; sets stopped() when a stop string completes.
  std::string push(std::string_view text);
  std::string flush();  // at the end: whatever is held back
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace kl
