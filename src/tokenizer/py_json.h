// JSON text as Python's json.dumps writes it, which is what chat templates feed the model
// (their `tojson` filter). nlohmann's dump() differs in separators and key order options.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace kl {

struct PyJsonStyle {
  std::string item_separator = ", ";  // json.dumps default; (",", ":") is the compact form
  std::string key_separator = ": ";
  bool ensure_ascii = false;  // transformers' tojson default; Python's json.dumps default is true
};

// Keys in insertion order (use ordered_json to keep the caller's order). Strings are escaped
// as Python does: \" \\ \n \r \t \b \f, other controls as \u00XX, and with ensure_ascii every
// non-ASCII character as \uXXXX (surrogate pairs above U+FFFF).
std::string py_json_dumps(const nlohmann::ordered_json& value, const PyJsonStyle& style = {});

}  // namespace kl
