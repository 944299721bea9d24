#pragma once
#include "cli/options.hpp"

namespace pgincr::commands {
// `pgincr teardown`: removes what the cdc mode made on the source (the slot, and the
// publication when pgincr created it), so that no slot keeps WAL for a pipeline that
// stopped. The cdc tables' rows stay; their positions are cleared, so a later sync
// loads them again under a new slot.
int teardown(const cli::Options &options);
} // namespace pgincr::commands
