// `w4a8moe run` (run_command.cpp).
#pragma once

#include "cli_args.h"

namespace w4a8moe::tools {

// Runs the command on its arguments; returns the program's exit status.
int run_command(Args const& args);

}  // namespace w4a8moe::tools
