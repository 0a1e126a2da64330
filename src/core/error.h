// Error type of the whole engine. Every failure a user can cause (bad file, bad flag, bad
// config) is reported as a kl::Error whose message says what is wrong and where.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace kl {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... A>
std::string concat(A&&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

// fail("config.json: key 'x' ", "must be an integer") -> throws kl::Error.
template <class... A>
[[noreturn]] void fail(A&&... parts) {
  throw Error(detail::concat(std::forward<A>(parts)...));
}

// Internal invariant (a bug in the engine, not bad input).
#define KL_ASSERT(cond)                                                                  \
  do {                                                                                   \
    if (!(cond)) ::kl::fail("internal error: ", #cond, " at ", __FILE__, ":", __LINE__); \
  } while (0)

}  // namespace kl
