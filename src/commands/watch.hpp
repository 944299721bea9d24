#pragma once
#include "cli/options.hpp"
#include "summary.hpp"

namespace pgincr::commands {

// `pgincr watch`: sync cycles back to back under one run lock, until a signal, until
// in sync (--until-in-sync) or until --max-runtime. A server that goes away ends the
// cycle, not the process: the next cycle reconnects, after a backoff. Returns 0 (in
// sync, or the runtime is up and the last cycle was fine), 1 (the last cycle had a
// failed table), 4 (a signal), 5 (--until-in-sync, and --max-runtime came first).
int watch(const cli::Options &options);

// Whether one table's cycle leaves it in sync: it worked, copied nothing new (no load,
// nothing merged, deleted or applied; a full-refresh reload counts as nothing new, since
// it copies everything every cycle) and its lag is under `lag_seconds`.
bool in_sync(const TableResult &r, int lag_seconds);

// Whether the table's cycle changed the destination (a load, merged, deleted or applied
// rows, committed).
bool changed(const TableResult &r);

} // namespace pgincr::commands
