#pragma once
// The compare engine's two sides for one configured table: the unique columns as the
// key, the copied columns (as the destination types them) as the row, the entry's
// filter on the source, and the live rows of a soft-delete destination.
#include "config.hpp"
#include "diff/range_diff.hpp"
#include "source/catalog.hpp"

#include <optional>
#include <string>

namespace pgincr::diff {

constexpr const char *deleted_at_column = "_pgincr_deleted_at";

struct TableSides {
    Side src;
    Side dst;
    Options options;
};

// `mark`: rows at or after it are still in flight (rows mode; nullopt: none is).
// `src` must be inside the transaction that reads the source (the filter's values are
// stored there). Throws catalog::TableError when the table cannot be compared range by
// range, saying what to do.
TableSides table_sides(pg::Connection &src, pg::Connection &dst, const config::Settings &settings,
                       const config::Table &cfg, const catalog::SourceTable &table, Compare compare,
                       const std::optional<std::string> &mark);

} // namespace pgincr::diff
