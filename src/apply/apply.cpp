#include "apply/apply.hpp"

#include "apply/conflicts.hpp"
#include "apply/merge.hpp"
#include "diff/table_sides.hpp"
#include "pg/copy.hpp"
#include "util/log.hpp"

#include <chrono>
#include <fmt/format.h>

namespace pgincr::apply {

std::string copy_out_sql(const pg::Connection &src, const catalog::SourceTable &table,
                         const std::string &where_sql) {
    return fmt::format("COPY (SELECT {} FROM ONLY {}{}) TO STDOUT (FORMAT binary)",
                       catalog::select_list(src, table), src.qualified(table.schema, table.name),
                       where_sql);
}

std::string copy_in_sql(const pg::Connection &dst, const catalog::SourceTable &table,
                        const std::string &target) {
    return fmt::format("COPY {} ({}) FROM STDIN (FORMAT binary)", target,
                       catalog::column_list(dst, table));
}

std::int64_t copy_rows(pg::Connection &src, pg::Connection &dst, const catalog::SourceTable &table,
                       const std::string &where_sql, const std::string &target, Progress &progress,
                       const Heartbeat &heartbeat) {
    using clock = std::chrono::steady_clock;
    auto last_beat = clock::now();
    return pg::copy_between(
        src, copy_out_sql(src, table, where_sql), dst, copy_in_sql(dst, table, target),
        [&](std::int64_t rows, std::int64_t bytes) {
            progress.update(rows, bytes);
            if (heartbeat && clock::now() - last_beat > std::chrono::seconds(5)) {
                heartbeat();
                last_beat = clock::now();
            }
        });
}

std::int64_t merge_staged(pg::Connection &dst, const std::string &target,
                          const std::string &staging, const config::Table &cfg,
                          const catalog::SourceTable &table, const std::string &dest_schema,
                          std::int64_t *conflicts, bool one_read, std::int64_t staged_rows) {
    merge::Spec spec;
    spec.target = target;
    spec.staging = staging;
    for (const auto *c : table.copied_columns())
        spec.columns.push_back(dst.quote_ident(c->name));
    for (const auto &u : table.unique_cols)
        spec.unique.push_back(dst.quote_ident(u));
    spec.key = dst.quote_ident(table.key->name);
    spec.append = cfg.mode == config::Mode::incremental_append;
    if (cfg.deletes == config::Deletes::soft)
        spec.deleted_at = dst.quote_ident(diff::deleted_at_column);
    spec.unique_rows = one_read && table.unique_rows;
    for (const auto &u : table.unique_cols) {
        const auto *c = table.column(u);
        spec.unique_not_null.push_back(c && c->not_null);
    }
    if (cfg.conflict == config::Conflict::newest_wins) {
        const std::string &name =
            cfg.conflict_column.empty() ? table.key->name : cfg.conflict_column;
        const auto *c = table.column(name);
        if (!c || c->generated)
            throw catalog::TableError(fmt::format(
                "\"conflict_column\": the source table has no column \"{}\" that pgincr copies "
                "(a generated column is computed by the destination) (tables-config.json entry "
                "{})",
                name, cfg.entry));
        spec.newest = dst.quote_ident(name);
    }
    if (conflicts::keeps_destination_changes(cfg))
        spec.touched = dst.qualified(dest_schema, conflicts::touched_name(cfg.destination));
    // No ANALYZE of the staging table: the plan (a scan of it, sorted, into the unique
    // index) has no alternative a statistic could choose, the planner reads its size
    // from its pages anyway, and on a 220,000-row delta it cost 0.75 s.
    // The sort of a typical delta spills to disk under the default 4 MB (measured in
    // BENCHMARKS.md); LOCAL ends with this transaction.
    dst.exec("SET LOCAL work_mem = '64MB'");
    log::debug(cfg.destination, "[dest] merge: {}",
               spec.unique_rows ? "rows unique in the source (its unique index), merged as staged"
                                : "newest row per key (DISTINCT ON)");
    std::int64_t held_back = 0;
    if (!spec.newest.empty())
        held_back = dst.exec(merge::held_back_sql(spec), pg::Expect::value).integer(0, 0);
    else if (!spec.touched.empty())
        held_back = conflicts::check_staged(dst, dest_schema, cfg, table, spec.staging);
    if (conflicts)
        *conflicts = held_back;
    auto merged = dst.exec(merge::merge_sql(spec)).affected_rows();
    // A TRUNCATE gives the table and its index new files, about 2 ms even when empty:
    // most of a sync with no changes, which stages the one row at its mark. A DELETE
    // of a few rows costs less; a large delta is truncated.
    constexpr std::int64_t delete_at_most = 1000;
    if (staged_rows >= 0 && staged_rows <= delete_at_most)
        dst.exec(fmt::format("DELETE FROM {}", spec.staging));
    else
        dst.exec(fmt::format("TRUNCATE {}", spec.staging));
    return merged;
}

} // namespace pgincr::apply
