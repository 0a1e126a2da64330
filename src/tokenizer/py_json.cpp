#include "tokenizer/py_json.h"

#include <cstdio>

#include "tokenizer/utf8.h"

namespace kl {
namespace {

void append_u_escape(unsigned v, std::string& out) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", v & 0xFFFF);
  out += buf;
}

void dump_string(const std::string& s, const PyJsonStyle& style, std::string& out) {
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20)
            append_u_escape(c, out);
          else
            out.push_back(char(c));
      }
      continue;
    }
    const size_t len = utf8::sequence_length(std::string_view(s).substr(i));
    if (len == 0) {  // nlohmann rejects invalid UTF-8 when it parses, but a caller may build one
      out += style.ensure_ascii ? "\\ufffd" : std::string(utf8::kReplacement);
      ++i;
      continue;
    }
    if (!style.ensure_ascii) {
      out.append(s, i, len);
      i += len;
      continue;
    }
    const char32_t cp = utf8::next(s, i);
    if (cp >= 0x10000) {
      const char32_t v = cp - 0x10000;
      append_u_escape(unsigned(0xD800 + (v >> 10)), out);
      append_u_escape(unsigned(0xDC00 + (v & 0x3FF)), out);
    } else {
      append_u_escape(unsigned(cp), out);
    }
  }
  out.push_back('"');
}

void dump(const nlohmann::ordered_json& v, const PyJsonStyle& style, std::string& out) {
  switch (v.type()) {
    case nlohmann::ordered_json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, val] : v.items()) {
        if (!first) out += style.item_separator;
        first = false;
        dump_string(key, style, out);
        out += style.key_separator;
        dump(val, style, out);
      }
      out.push_back('}');
      break;
    }
    case nlohmann::ordered_json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& val : v) {
        if (!first) out += style.item_separator;
        first = false;
        dump(val, style, out);
      }
      out.push_back(']');
      break;
    }
    case nlohmann::ordered_json::value_t::string:
      dump_string(v.get_ref<const std::string&>(), style, out);
      break;
    default:  // numbers, booleans, null: the same text in both
      out += v.dump();
  }
}

}  // namespace

std::string py_json_dumps(const nlohmann::ordered_json& value, const PyJsonStyle& style) {
  std::string out;
  dump(value, style, out);
  return out;
}

}  // namespace kl
