// What `kimi-linear inspect` reports about a checkpoint directory, computed from config.json
// (and the weight files when they are present).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

namespace kl {

// Works on a directory holding only config.json: weights absent is stated, not an error.
nlohmann::json inspect_model(const std::string& dir);
// The same report for a config without a directory (the built-in model).
nlohmann::json inspect_config(const KimiConfig& c);
// Human-readable rendering of the report.
std::string inspect_text(const nlohmann::json& report);

}  // namespace kl
