#pragma once
// The delete check of an entry with "deletes": "hard" or "soft": destination rows
// whose unique columns no longer exist in the source (under the entry's filter) are
// deleted, or get `_pgincr_deleted_at` set. It runs inside the incremental sync, after
// the merge: the source keys are read in the same snapshot as the rows just merged,
// so a row inserted after the snapshot is neither copied nor taken for deleted, and
// the deletes commit in the merge's transaction, with the mark.
#include "config.hpp"
#include "pg/connection.hpp"
#include "source/catalog.hpp"
#include "state.hpp"

#include <cstdint>

namespace pgincr::deletes {

struct Result {
    std::int64_t rows_deleted = 0;    // deleted, or newly marked deleted
    std::int64_t missing_in_dest = 0; // source keys the destination lacks (verify --repair)
    std::int64_t conflicts = 0;       // target_wins, manual: kept, changed in the destination
};

// Whether this sync runs the check: "delete_check_seconds" after the last one.
bool due(pg::Connection &dst, const config::Table &cfg,
         const std::optional<state::TableState> &saved);

// Runs the check in the caller's transactions: `src` still in the sync's snapshot,
// `dst` in the merge's transaction. Deletes at most max_delete_fraction of the
// destination's rows unless `allow` (`pgincr sync --allow-deletes`); above it, or with
// an empty source and a non-empty destination, throws catalog::TableError with the
// count, and the caller's rollback leaves everything as it was.
Result run(pg::Connection &src, pg::Connection &dst, const config::Settings &settings,
           const config::Table &cfg, const catalog::SourceTable &table, bool allow);

// The destination's clock, as it prints timestamptz: what `deletes_checked_at` keeps.
std::string now(pg::Connection &dst);

} // namespace pgincr::deletes
