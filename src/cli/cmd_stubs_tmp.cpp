// Temporary: commands not yet written. Removed as each cmd_*.cpp lands.
#include "cli/commands.h"
namespace kl::cli {
}  // namespace kl::cli
