#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace kl {

std::string StopStringFilter::push(std::string_view text) {
  if (stopped_) return {};
  held_ += text;
  // A complete stop string: emit what precedes the earliest one, stop.
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) {
    if (s.empty()) continue;
    size_t p = held_.find(s);
    if (p != std::string::npos) cut = std::min(cut, p);
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, cut);
    held_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_)
    for (size_t n = std::min(s.size() - (s.empty() ? 0 : 1), held_.size()); n > hold; n--)
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string StopStringFilter::flush() {
  std::string out = stopped_ ? std::string() : held_;
  held_.clear();
  return out;
}

GenerationResult generate(Session& s, const GenerationRequest& req, const std::function<bool(int32_t)>& on_token,
                          const Progress& progress) {
  using clock = std::chrono::steady_clock;
  GenerationResult r;
  r.prompt_tokens = int64_t(req.prompt.size());
  r.stop_reason = "max_tokens";
  if (req.max_tokens < 0) fail("max tokens must be >= 0");
  if (req.prompt.empty() && s.n_tokens() == 0) fail("nothing to generate from: the prompt is empty");
  Sampler sampler(req.sampling, s.vocab());
  auto t0 = clock::now();
  const float* logits = req.prompt.empty() ? s.last_logits() : s.feed(req.prompt, progress);
  auto t1 = clock::now();
  r.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  for (int64_t i = 0; i < req.max_tokens; i++) {
    const int32_t id = sampler.sample(logits, s.tokens());
    r.ids.push_back(id);
    if (std::find(req.stop_ids.begin(), req.stop_ids.end(), id) != req.stop_ids.end()) {
      r.stop_reason = "stop_token";
      break;
    }
    const bool go_on = on_token ? on_token(id) : true;
    logits = s.step(id);  // the state keeps every token but a final stop id
    if (!go_on) {
      r.stop_reason = "stopped";
      break;
    }
  }
  r.gen_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

GenerationResult generate_text(Session& s, const Tokenizer& tok, const GenerationRequest& req,
                               const std::function<void(std::string_view)>& on_text, const Progress& progress) {
  StreamDecoder dec(tok);
  StopStringFilter filter(req.stop_strings);
  std::string text;
  auto emit = [&](const std::string& t) {
    if (t.empty()) return;
    text += t;
    if (on_text) on_text(t);
  };
  GenerationResult r = generate(
      s, req,
      [&](int32_t id) {
        if (!tok.is_special(id)) emit(filter.push(dec.feed(id)));  // special tokens are not shown
        return !filter.stopped();
      },
      progress);
  if (r.stop_reason == "stopped") r.stop_reason = "stop_string";
  if (!filter.stopped()) emit(filter.push(dec.finish()));
  emit(filter.flush());
  r.text = std::move(text);
  return r;
}

}  // namespace kl
