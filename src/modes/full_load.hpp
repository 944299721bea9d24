#pragma once
// Full loads (initial, reset, full-refresh): the table is rebuilt in a shadow table
// from the source snapshot and swapped in within one destination transaction, so
// readers see the old complete table until the new complete one replaces it.
#include "apply/apply.hpp"
#include "config.hpp"
#include "pg/connection.hpp"
#include "pg/snapshot.hpp"
#include "source/catalog.hpp"
#include "source/watermark.hpp"
#include "state.hpp"

#include <optional>
#include <string>

namespace pgincr::full_load {

struct Result {
    std::int64_t rows = 0;
    std::optional<std::string> watermark;
    std::optional<double> lag_seconds;
    std::string dest_signature;
};

// How the rows travel: PGINCR_LOAD_VIA, except that a table with a filter always uses
// pgincr's own COPY, because pg_dump cannot filter rows.
config::LoadVia choose_via(const config::Settings &settings, const config::Table &cfg);

// Reads the rows and the first mark in `snapshot`, closes it, then builds indexes,
// swaps and commits on `dst`. Throws on any failure, leaving the destination as it was.
// `next` is the table's new progress: its mark and destination signature are filled
// in here, and it is written to the destination in the swap transaction.
Result run(pg::Snapshot &snapshot, pg::Connection &dst, const config::Settings &settings,
           const config::Table &cfg, const catalog::SourceTable &table,
           const watermark::Horizon &horizon, const apply::Heartbeat &heartbeat,
           state::TableState &next);

} // namespace pgincr::full_load
