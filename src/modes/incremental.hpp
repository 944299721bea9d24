#pragma once
// One incremental sync of one table: the rows at or after the mark stream by COPY
// into the UNLOGGED staging table and are merged by the unique columns, all in one
// destination transaction.
#include "catalog.hpp"
#include "config.hpp"
#include "pg/connection.hpp"
#include "watermark.hpp"

#include <optional>
#include <string>

namespace pgincr::incremental {

struct Result {
    std::int64_t rows_copied = 0;
    std::int64_t rows_merged = 0;
    std::optional<std::string> watermark;
    std::optional<double> lag_seconds;
};

// `src` must be inside the sync's REPEATABLE READ READ ONLY transaction. Commits on
// `dst`; on any failure the destination transaction rolls back and nothing changes.
Result run(pg::Connection &src, pg::Connection &dst, const config::Settings &settings,
           const config::Table &cfg, const catalog::SourceTable &table,
           const std::optional<std::string> &mark, const watermark::Horizon &horizon);

} // namespace pgincr::incremental
