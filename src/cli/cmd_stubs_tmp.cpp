// Temporary: commands not yet written. Removed as each cmd_*.cpp lands.
#include "cli/commands.h"
namespace kl::cli {
void add_tokenize_commands(CLI::App&, int&) {}
}  // namespace kl::cli
