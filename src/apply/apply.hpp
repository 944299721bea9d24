#pragma once
// The apply step: rows from the source land in a destination table by binary COPY
// (the shadow table of a load, or <table>_stg), and staged rows are merged into the
// destination table. Deletes will join here. Every step runs in the caller's
// destination transaction.
#include "config.hpp"
#include "pg/connection.hpp"
#include "source/catalog.hpp"
#include "util/progress.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace pgincr::apply {

// Called every few seconds during a long COPY, between buffers: checks what must
// still hold (the run lock) and throws to abort the COPY when it does not.
using Heartbeat = std::function<void()>;

// The two ends of a binary COPY of `table`'s rows: `COPY (SELECT <columns> FROM ONLY
// <table><where_sql>) TO STDOUT` on the source (`where_sql` is "" or " WHERE ..."), and
// `COPY <target> (<columns>) FROM STDIN` on the destination.
std::string copy_out_sql(const pg::Connection &src, const catalog::SourceTable &table,
                         const std::string &where_sql);
std::string copy_in_sql(const pg::Connection &dst, const catalog::SourceTable &table,
                        const std::string &target);

// Streams `SELECT <columns> FROM ONLY <table><where_sql>` from `src` into `target`
// by binary COPY; `where_sql` is "" or " WHERE ...". Returns the rows copied.
std::int64_t copy_rows(pg::Connection &src, pg::Connection &dst, const catalog::SourceTable &table,
                       const std::string &where_sql, const std::string &target, Progress &progress,
                       const Heartbeat &heartbeat = {});

// Merges `staging` (the qualified <table>_stg) into `target` by the unique columns (or
// appends, for incremental-append), then empties the staging table. Returns the rows
// written. The entry's conflict policy decides which staged rows are applied
// (apply/conflicts.hpp); `conflicts`, when given, gets how many were held back by it.
// `one_read`: the staged rows are one read of the source table in one snapshot, so that
// a source unique index on the unique columns (SourceTable::unique_rows) holds for them
// and the merge needs no dedup. `staged_rows`, when known (>= 0): a few staged rows are
// deleted afterwards rather than truncated.
std::int64_t merge_staged(pg::Connection &dst, const std::string &target,
                          const std::string &staging, const config::Table &cfg,
                          const catalog::SourceTable &table, const std::string &dest_schema,
                          std::int64_t *conflicts = nullptr, bool one_read = false,
                          std::int64_t staged_rows = -1);

} // namespace pgincr::apply
