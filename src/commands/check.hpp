#pragma once
#include "cli/options.hpp"

namespace pgincr::check {
// `pgincr check`: connects to both servers and reports, table by table, errors,
// warnings and what the next sync will do. Returns 0 when every table can sync.
int run(const cli::Options &options);
} // namespace pgincr::check
