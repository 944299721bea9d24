#pragma once
// Full loads (initial and reset): the table is rebuilt in a shadow table under the
// source snapshot and swapped in within one destination transaction, so readers see
// the old complete table until the new complete one replaces it.
#include "catalog.hpp"
#include "config.hpp"
#include "pg/connection.hpp"
#include "util/progress.hpp"
#include "watermark.hpp"

#include <optional>
#include <string>

namespace pgincr::load {

struct Result {
    std::int64_t rows = 0;
    std::optional<std::string> watermark;
    std::optional<double> lag_seconds;
    std::string dest_signature;
};

// How the rows travel: PGINCR_LOAD_VIA, except that a table with a filter always uses
// pgincr's own COPY, because pg_dump cannot filter rows.
config::LoadVia choose_via(const config::Settings &settings, const config::Table &cfg);

// Streams `SELECT <columns> FROM ONLY <table><where_sql>` from `src` into `target`
// by binary COPY; `where_sql` is "" or " WHERE ...". Returns the rows copied.
std::int64_t copy_rows(pg::Connection &src, pg::Connection &dst, const catalog::SourceTable &table,
                       const std::string &where_sql, const std::string &target, Progress &progress);

// `src` must be inside the sync's REPEATABLE READ READ ONLY transaction; its snapshot
// is exported for pg_dump. Commits on `dst`; throws on any failure, leaving the
// destination as it was.
Result full_load(pg::Connection &src, pg::Connection &dst, const config::Settings &settings,
                 const config::Table &cfg, const catalog::SourceTable &table,
                 const watermark::Horizon &horizon);

// The name of the staging table: "<destination>_stg", as the old tool named it.
std::string staging_name(const std::string &destination);

// Creates the unique index the merge needs (and, with "indexes": "all", the source's
// other indexes, as non-unique ones) on `qualified_table`.
void create_indexes(pg::Connection &dst, const std::string &qualified_table,
                    const config::Table &cfg, const catalog::SourceTable &table);

// (Re)creates the UNLOGGED staging table with the columns pgincr writes.
void create_staging(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
                    const catalog::SourceTable &table);

} // namespace pgincr::load
