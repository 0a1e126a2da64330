#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <optional>

#include "core/error.h"

namespace kl {
namespace {

// Unicode White_Space, the meaning of \s in Rust's regex (README §5.4), as PCRE2 class items.
constexpr std::string_view kWhiteSpaceItems =
    R"(\x{9}-\x{d}\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000})";

// General categories, major -> minors. Together they partition all code points.
struct Major {
  const char* name;
  std::array<const char*, 7> minors;
};
constexpr std::array<Major, 7> kCategories = {{
    {"L", {"Lu", "Ll", "Lt", "Lm", "Lo"}},
    {"M", {"Mn", "Mc", "Me"}},
    {"N", {"Nd", "Nl", "No"}},
    {"P", {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"}},
    {"S", {"Sm", "Sc", "Sk", "So"}},
    {"Z", {"Zs", "Zl", "Zp"}},
    {"C", {"Cc", "Cf", "Cs", "Co", "Cn"}},
}};

bool is_general_category(std::string_view name) {
  for (const Major& m : kCategories) {
    if (name == m.name) return true;
    for (const char* minor : m.minors)
      if (minor && name == minor) return true;
  }
  return false;
}

// PCRE2 >= 10.40 matches a bare \p{Script} against Script_Extensions; Rust's regex (and so
// tiktoken) uses Script: 、 and 。 are not \p{Han} there (golden cjk_011). Ask for Script.
std::string translate_property(std::string_view name) {
  if (is_general_category(name) || name.find_first_of(":=") != std::string_view::npos || name == "Any" ||
      name == "L&")
    return std::string(name);
#if PCRE2_MAJOR > 10 || (PCRE2_MAJOR == 10 && PCRE2_MINOR >= 40)
  return "sc:" + std::string(name);
#else
  return std::string(name);
#endif
}

class Translator {
 public:
  Translator(std::string_view p, IntersectionStyle style) : p_(p), style_(style) {}

  std::string run() {
    std::string out;
    while (i_ < p_.size()) {
      const char c = p_[i_];
      if (c == '\\') {
        out += top_level_escape();
      } else if (c == '[') {
        out += char_class();
      } else {
        out.push_back(c);
        ++i_;
      }
    }
    return out;
  }

 private:
  [[noreturn]] void error(std::string_view what) const {
    fail("split pattern: ", what, " at offset ", i_, " of '", p_, "'");
  }

  // Reads one escape at p_[i_] == '\\' and returns its source text; sets `prop` to the property
  // name for \p{..}/\P{..} (with `negated`).
  std::string read_escape(std::string& prop, bool& negated) {
    prop.clear();
    negated = false;
    if (i_ + 1 >= p_.size()) error("trailing backslash");
    const char e = p_[i_ + 1];
    const size_t start = i_;
    i_ += 2;
    if (e == 'p' || e == 'P' || e == 'x') {
      if (i_ < p_.size() && p_[i_] == '{') {
        const size_t close = p_.find('}', i_);
        if (close == std::string_view::npos) error("unterminated \\p{ or \\x{");
        if (e != 'x') prop = std::string(p_.substr(i_ + 1, close - i_ - 1));
        i_ = close + 1;
      } else if (e == 'x') {
        i_ = std::min(p_.size(), i_ + 2);
      } else {
        if (i_ >= p_.size()) error("incomplete \\p");
        prop = std::string(1, p_[i_]);
        ++i_;
      }
      negated = e == 'P';
    }
    return std::string(p_.substr(start, i_ - start));
  }

  std::string property_escape(const std::string& prop, bool negated) {
    return std::string(negated ? "\\P{" : "\\p{") + translate_property(prop) + "}";
  }

  std::string top_level_escape() {
    std::string prop;
    bool negated;
    const std::string src = read_escape(prop, negated);
    if (src == "\\s") return "[" + std::string(kWhiteSpaceItems) + "]";
    if (src == "\\S") return "[^" + std::string(kWhiteSpaceItems) + "]";
    if (!prop.empty()) return property_escape(prop, negated);
    return src;
  }

  // One item of a class body: its PCRE2 text, and the general category when it is exactly \p{GC}.
  struct Item {
    std::string text;
    std::string category;
  };

  // Parses a class body up to (not including) its closing ']' or a top-level "&&".
  std::vector<Item> class_items() {
    std::vector<Item> items;
    bool first = true;
    while (i_ < p_.size()) {
      const char c = p_[i_];
      if (c == ']' && !first) break;
      if (c == '&' && i_ + 1 < p_.size() && p_[i_ + 1] == '&') break;
      first = false;
      if (c == '\\') {
        std::string prop;
        bool negated;
        const std::string src = read_escape(prop, negated);
        if (src == "\\s") {
          items.push_back({std::string(kWhiteSpaceItems), ""});
        } else if (src == "\\S") {
          error("\\S inside a character class is not supported");
        } else if (!prop.empty()) {
          items.push_back({property_escape(prop, negated), !negated && is_general_category(prop) ? prop : ""});
        } else {
          items.push_back({src, ""});
        }
      } else if (c == '[') {
        error("nested character class outside an intersection is not supported");
      } else {
        // '-' (ranges) and literal characters pass through unchanged; a literal '[' or '^' in
        // PCRE2 needs no escape here either.
        items.push_back({std::string(1, c), ""});
        ++i_;
      }
    }
    return items;
  }

  static std::string join(const std::vector<Item>& items) {
    std::string s;
    for (const Item& it : items) s += it.text;
    return s;
  }

  std::string char_class() {
    ++i_;  // '['
    bool negated = false;
    if (i_ < p_.size() && p_[i_] == '^') {
      negated = true;
      ++i_;
    }
    std::vector<Item> left = class_items();
    if (i_ >= p_.size()) error("unterminated character class");
    if (p_[i_] == ']') {
      ++i_;
      return std::string(negated ? "[^" : "[") + join(left) + "]";
    }
    // Intersection: [A&&[^B]] (the only form tiktoken patterns use).
    if (negated) error("a negated class with '&&' is not supported");
    i_ += 2;  // "&&"
    if (i_ + 1 >= p_.size() || p_[i_] != '[' || p_[i_ + 1] != '^')
      error("'&&' must be followed by a negated class [^...]");
    i_ += 2;
    std::vector<Item> right = class_items();
    if (i_ >= p_.size() || p_[i_] != ']') error("unterminated class after '&&'");
    ++i_;
    if (i_ >= p_.size() || p_[i_] != ']') error("expected ']' closing the intersection");
    ++i_;
    const std::string b = join(right);
    if (style_ == IntersectionStyle::kComplement) {
      if (auto c = complement(left)) return "[^" + *c + b + "]";
    }
    return "(?:(?![" + b + "])[" + join(left) + "])";
  }

  // For A a union of general categories, the class items of the complement of A; nullopt otherwise.
  static std::optional<std::string> complement(const std::vector<Item>& a) {
    std::vector<std::string> in;
    for (const Item& it : a) {
      if (it.category.empty()) return std::nullopt;
      in.push_back(it.category);
    }
    auto covered = [&](std::string_view major, std::string_view minor) {
      return std::find(in.begin(), in.end(), major) != in.end() ||
             std::find(in.begin(), in.end(), minor) != in.end();
    };
    std::string out;
    for (const Major& m : kCategories) {
      std::vector<std::string_view> rest;
      size_t total = 0;
      for (const char* minor : m.minors) {
        if (!minor) continue;
        ++total;
        if (!covered(m.name, minor)) rest.push_back(minor);
      }
      if (rest.size() == total) {
        out += std::string("\\p{") + m.name + "}";
      } else {
        for (std::string_view r : rest) out += "\\p{" + std::string(r) + "}";
      }
    }
    return out;
  }

  std::string_view p_;
  IntersectionStyle style_;
  size_t i_ = 0;
};

}  // namespace

std::string translate_pattern(std::string_view pattern, IntersectionStyle style) {
  return Translator(pattern, style).run();
}

struct Pretokenizer::Impl {
  std::string pattern, pcre2_pattern;
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() { pcre2_code_free(code); }
};

Pretokenizer::Pretokenizer(std::string_view pattern, IntersectionStyle style) : impl_(std::make_unique<Impl>()) {
  impl_->pattern = std::string(pattern);
  impl_->pcre2_pattern = translate_pattern(pattern, style);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // DOLLAR_ENDONLY: in Rust `$` is the end of the text only, not also before a final newline.
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(impl_->pcre2_pattern.data()), impl_->pcre2_pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("split pattern: PCRE2 cannot compile '", impl_->pcre2_pattern, "' (from '", pattern, "'): ",
         reinterpret_cast<const char*>(msg), " at offset ", err_off);
  }
  uint32_t have_jit = 0;
  pcre2_config(PCRE2_CONFIG_JIT, &have_jit);
  // Without JIT the interpreter gives the same matches, only slower.
  if (have_jit) impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Pretokenizer::~Pretokenizer() = default;
Pretokenizer::Pretokenizer(Pretokenizer&&) noexcept = default;
Pretokenizer& Pretokenizer::operator=(Pretokenizer&&) noexcept = default;
const std::string& Pretokenizer::pattern() const { return impl_->pattern; }
const std::string& Pretokenizer::pcre2_pattern() const { return impl_->pcre2_pattern; }
bool Pretokenizer::jit() const { return impl_->jit; }

namespace {
// Per-call PCRE2 state. The JIT stack is only created if a match overflows the default 32 KiB
// one (possible with the lookahead form on long letter runs).
struct MatchState {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ~MatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(mctx);
    pcre2_match_data_free(md);
  }
};
}  // namespace

void Pretokenizer::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  if (text.empty()) return;
  MatchState st;
  st.md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  if (!st.md) fail("split pattern: out of memory");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t off = 0;
  while (off < text.size()) {
    int rc = pcre2_match(impl_->code, subject, text.size(), off, PCRE2_NO_UTF_CHECK, st.md, st.mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !st.stack) {
      st.mctx = pcre2_match_context_create(nullptr);
      st.stack = pcre2_jit_stack_create(64 * 1024, 256 * 1024 * 1024, nullptr);
      if (!st.mctx || !st.stack) fail("split pattern: out of memory for the JIT stack");
      pcre2_jit_stack_assign(st.mctx, nullptr, st.stack);
      continue;
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("split pattern: matching failed at byte ", off, ": ", reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
    const size_t start = ov[0], end = ov[1];
    if (end == start) {
      // An empty match (none of the shipped patterns has one): step over one character.
      off = start + 1;
      while (off < text.size() && (static_cast<unsigned char>(text[off]) & 0xC0) == 0x80) ++off;
      continue;
    }
    pieces.push_back(text.substr(start, end - start));
    off = end;
  }
}

}  // namespace kl
