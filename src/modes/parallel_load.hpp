#pragma once
// A full load read in parallel (PGINCR_JOBS, --jobs): the source table's heap is cut
// into CTID block ranges, a work queue that N threads drain. Each thread has its own
// source session, which imports the load's exported snapshot so that all parts are one
// consistent copy, and its own destination session, which COPYs into the shadow table
// (committed beforehand, so that those sessions see it) in one transaction. libpq
// sessions are never shared between threads; the calling thread only reports progress
// and runs the heartbeat.
#include "apply/apply.hpp"
#include "config.hpp"
#include "pg/connection.hpp"
#include "pg/snapshot.hpp"
#include "source/catalog.hpp"
#include "util/progress.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgincr::parallel_load {

// Heap blocks [from, to); no `to`: to the end of the table.
struct Range {
    std::int64_t from = 0;
    std::optional<std::int64_t> to;
    bool operator==(const Range &) const = default;
};

// Work-queue parts per job: smaller parts even out ranges that hold more or fewer live
// rows (dead tuples, free space) at the cost of one more COPY statement each.
constexpr int parts_per_job = 4;

// Cuts `blocks` into `parts` ranges of (nearly) equal size, each at least one block.
// The last range has no upper bound, so that pages added after `blocks` was measured
// are read too. Always at least one range.
std::vector<Range> split(std::int64_t blocks, int parts);

// "ctid >= '(a,0)'::tid AND ctid < '(b,0)'::tid", or without the upper bound; "" for
// the whole table.
std::string predicate(const Range &range);

// The ranges the load of `table` is read in: one open range (a single stream) when
// `jobs` is 1, when the source is older than PostgreSQL 14 (no TID range scan: every
// part would read the whole table) or when the table is smaller than
// PGINCR_SPLIT_MIN_MB. Runs in the load's snapshot on `src`.
std::vector<Range> plan(pg::Connection &src, const catalog::SourceTable &table,
                        const config::Settings &settings, const std::string &tag, int jobs);

// Copies `ranges` of `table` (with the entry's filter) into `shadow` on `jobs` threads
// and returns the rows copied. `snapshot`'s own session reads for one of them; the
// others open sessions with the same settings and import its exported snapshot. Each
// destination session commits once the queue is empty; on any failure (a part, the
// heartbeat, a signal) the others stop and the first error is thrown, and the caller
// drops the shadow table.
std::int64_t copy(pg::Snapshot &snapshot, const pg::ConnInfo &dest, const config::Table &cfg,
                  const catalog::SourceTable &table, const std::vector<Range> &ranges, int jobs,
                  const std::string &shadow, Progress &progress, const apply::Heartbeat &heartbeat);

} // namespace pgincr::parallel_load
