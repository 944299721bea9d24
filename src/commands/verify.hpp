#pragma once
#include "cli/options.hpp"

namespace pgincr::commands {
// `pgincr verify [DEST...] [--json] [--repair]`: compares each table's rows between
// source and destination under the run lock. Returns 0 when every table is equal, 1
// when a difference was found or a table could not be compared.
int verify(const cli::Options &options);
} // namespace pgincr::commands
