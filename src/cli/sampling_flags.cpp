#include "cli/sampling_flags.h"

#include <random>

#include "core/error.h"

namespace kl::cli {

void add_sampling_flags(CLI::App* cmd, SamplingFlags& f, float default_temperature) {
  f.p.temperature = default_temperature;
  cmd->add_option("--temperature,--temp", f.p.temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", f.p.top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", f.p.top_p, "Nucleus sampling: keep the smallest set with this much probability (1 = off)");
  cmd->add_option("--min-p", f.p.min_p, "Drop tokens less likely than min-p x the most likely one (0 = off)");
  cmd->add_option("--repeat-penalty", f.p.repetition_penalty, "Penalty for tokens seen recently (1 = off)");
  cmd->add_option("--presence-penalty", f.p.presence_penalty, "Subtracted from the logit of every seen token");
  cmd->add_option("--frequency-penalty", f.p.frequency_penalty, "Subtracted per occurrence of a seen token");
  cmd->add_option("--repeat-last-n", f.p.penalty_last_n, "Tokens of history the penalties look at (-1 = all)");
  cmd->add_option("--logit-bias", f.logit_bias, "ID=BIAS added to a token's logit (repeatable; BIAS may be -inf)");
  cmd->add_option("--seed", f.p.seed, "Random seed (same seed and input, same output)")
      ->each([&f](const std::string&) { f.seed_given = true; });
  cmd->add_option("--stop", f.stop, "Stop before this string (repeatable; matched across tokens, not printed)");
  cmd->add_option("--max-tokens,-n", f.max_tokens, "Most tokens to generate")->check(CLI::NonNegativeNumber);
}

SamplingParams finish_sampling(SamplingFlags& f) {
  SamplingParams p = f.p;
  for (const std::string& lb : f.logit_bias) {
    size_t eq = lb.find('=');
    if (eq == std::string::npos) fail("--logit-bias '", lb, "': expected ID=BIAS, e.g. 163586=-inf");
    try {
      size_t used = 0;
      const int id = std::stoi(lb.substr(0, eq), &used);
      if (used != eq) throw std::invalid_argument("id");
      const std::string b = lb.substr(eq + 1);
      const float bias = (b == "-inf") ? -INFINITY : (b == "inf" || b == "+inf") ? INFINITY : std::stof(b);
      p.logit_bias[id] = bias;
    } catch (const std::exception&) {
      fail("--logit-bias '", lb, "': expected ID=BIAS with an integer id and a number");
    }
  }
  if (!f.seed_given) p.seed = std::random_device{}();
  return p;
}

}  // namespace kl::cli
