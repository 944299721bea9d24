#pragma once
#include "cli/options.hpp"

namespace pgincr::commands {
// `pgincr check`: connects to both servers and reports, table by table, errors,
// warnings and what the next sync will do. Returns 0 when every table can sync.
int check(const cli::Options &options);
} // namespace pgincr::commands
