// Persistent sessions (DESIGN.md §3): a sequence's state and token history in a versioned,
// checksummed file, refused when it was made for another model or is damaged.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/state.h"

namespace kl {

class Model;

// Writes atomically (temp file + rename): an interrupted save never damages an older file.
void save_state(const Model& m, const SequenceState& s, const std::vector<int32_t>& tokens, const std::string& path);
// Reads a file written by save_state for the same model; kl::Error naming the file otherwise.
SequenceState load_state(const Model& m, const std::string& path, std::vector<int32_t>* tokens);

}  // namespace kl
