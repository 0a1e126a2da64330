// Sampling and stop flags shared by `generate` (text mode) and `chat`.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "runtime/sampler.h"

namespace kl::cli {

struct SamplingFlags {
  SamplingParams p;
  std::vector<std::string> logit_bias;  // "ID=BIAS"
  std::vector<std::string> stop;
  int64_t max_tokens = 256;
  bool seed_given = false;
};

void add_sampling_flags(CLI::App* cmd, SamplingFlags& f, float default_temperature);
// Completes the params: logit biases parsed, a random seed when none was given.
SamplingParams finish_sampling(SamplingFlags& f);

}  // namespace kl::cli
