#pragma once
// The cdc mode for one run (README.md, "Change data capture"): every cdc entry of the
// run is synced together, because they share one slot and one stream.
//
//   1. The source must allow it (wal_level, REPLICATION, a replica identity per table);
//      the publication is made to carry the config's cdc tables (cdc/publication.hpp).
//   2. Tables without a position (new, reset, changed) are loaded, each under the
//      snapshot exported with a slot: the pipeline's slot when it is created, else a
//      temporary one. The slot's consistent point becomes the table's position, saved
//      in the swap transaction: the stream's changes that committed before it are in
//      the loaded rows and are skipped for that table.
//   3. The slot is drained up to the source's WAL end as it was after the loads
//      (cdc/drain.hpp): batches of source transactions, one destination transaction
//      each, with the position saved in it and confirmed to the slot only after it.
//   4. A table whose columns changed in the stream stops taking changes there and is
//      reloaded in the same run.
//
// A slot that is gone or invalidated stops the tables that depended on it with the way
// back (`pgincr reset`), never a silent reload.
#include "config.hpp"
#include "modes/table_sync.hpp"
#include "state.hpp"
#include "summary.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace pgincr::cdc_sync {

struct Request {
    std::vector<config::Table> tables;     // this run's cdc entries, in config order
    std::vector<config::Table> configured; // every cdc entry (the publication's tables)
    std::vector<std::string> replace;      // --replace
    // `pgincr watch`: go on streaming past the WAL end read after the loads, applying
    // changes as they commit, until then (or a signal).
    std::optional<std::chrono::steady_clock::time_point> follow_until;
};

struct Outcome {
    std::vector<TableResult> tables; // in the order of Request::tables
    std::optional<SlotReport> slot;  // after the run, when the source could be read
};

Outcome run(table_sync::Sessions &sessions, const config::Settings &settings,
            const state::Store &store, const Request &request);

// The slot's state as `status`, the log and the webhook report it.
SlotReport slot_report(pg::Connection &src, const std::string &slot);

} // namespace pgincr::cdc_sync
