#pragma once
#include "cli/options.hpp"

namespace pgincr::commands {
// `pgincr status [--json]`: per table, the watermark, the last sync and the lag.
int status(const cli::Options &options);
// `pgincr reset TABLE...`: the next sync reloads these tables whole.
int reset(const cli::Options &options);
} // namespace pgincr::commands
