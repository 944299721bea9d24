#pragma once
#include "cli/options.hpp"

namespace pgincr::commands {
// `pgincr sync`: lock, then every table in config order, then the webhook.
// Returns the exit code (0 all fine, 1 a table failed, 4 interrupted).
int sync(const cli::Options &options);
} // namespace pgincr::commands
