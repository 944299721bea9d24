#pragma once
// One incremental sync of one table: the rows at or after the mark stream by COPY
// into the UNLOGGED staging table and are merged by the unique columns, all in one
// destination transaction.
#include "apply/apply.hpp"
#include "config.hpp"
#include "pg/connection.hpp"
#include "pg/snapshot.hpp"
#include "source/catalog.hpp"
#include "source/watermark.hpp"
#include "state.hpp"

#include <optional>
#include <string>

namespace pgincr::incremental {

struct Result {
    std::int64_t rows_copied = 0;
    std::int64_t rows_merged = 0;
    std::optional<std::string> watermark;
    std::optional<double> lag_seconds;
    std::int64_t rows_deleted = 0;
    std::int64_t conflicts = 0; // held back by the entry's conflict policy
};

// This sync's delete check (apply/deletes.hpp): due or not, and allowed past the guard.
struct DeleteCheck {
    bool run = false;
    bool allow = false; // `pgincr sync --allow-deletes`
};

// Reads the changed rows and the new mark in `snapshot` and closes it before the
// merge, or after the delete check when one is due, which reads the source's keys in
// the same snapshot. `next` (the table's new progress) gets the new mark and is written in the
// merge's transaction. Commits on `dst`; on any failure the destination transaction rolls back and
// nothing changes.
Result run(pg::Snapshot &snapshot, pg::Connection &dst, const config::Settings &settings,
           const config::Table &cfg, const catalog::SourceTable &table,
           const std::optional<std::string> &mark, const watermark::Horizon &horizon,
           const apply::Heartbeat &heartbeat, state::TableState &next,
           const DeleteCheck &deletes = {});

} // namespace pgincr::incremental
