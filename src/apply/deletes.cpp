#include "apply/deletes.hpp"

#include "apply/conflicts.hpp"
#include "diff/table_sides.hpp"
#include "util/fault.hpp"
#include "util/log.hpp"

#include <fmt/format.h>

namespace pgincr::deletes {

bool due(pg::Connection &dst, const config::Table &cfg,
         const std::optional<state::TableState> &saved) {
    if (cfg.deletes == config::Deletes::ignore || cfg.mode != config::Mode::incremental_deduped)
        return false;
    if (cfg.delete_check_seconds == 0 || !saved || !saved->deletes_checked_at)
        return true;
    return dst
        .exec("SELECT $1::pg_catalog.timestamptz + pg_catalog.make_interval(secs => $2) <= "
              "pg_catalog.now()",
              {*saved->deletes_checked_at, std::to_string(cfg.delete_check_seconds)},
              pg::Expect::value)
        .boolean(0, 0);
}

std::string now(pg::Connection &dst) {
    return std::string(
        dst.exec("SELECT pg_catalog.now()::pg_catalog.text", pg::Expect::value).text(0, 0));
}

Result run(pg::Connection &src, pg::Connection &dst, const config::Settings &settings,
           const config::Table &cfg, const catalog::SourceTable &table, bool allow) {
    auto sides =
        diff::table_sides(src, dst, settings, cfg, table, diff::Compare::keys, std::nullopt);
    Result result;
    std::int64_t dest_rows = 0, limit = 0;
    std::string deleted_at = dst.quote_ident(diff::deleted_at_column);
    auto refuse = [&](const std::string &what) {
        return catalog::TableError(fmt::format(
            "{}; nothing was deleted and this sync's changes were not applied. If the source "
            "really lost these rows, run `pgincr sync --allow-deletes {}` once, or raise "
            "\"max_delete_fraction\" (tables-config.json entry {})",
            what, cfg.destination, cfg.entry));
    };
    auto on_counts = [&](const diff::Totals &t) {
        dest_rows = t.dest_rows;
        limit = static_cast<std::int64_t>(static_cast<double>(dest_rows) * cfg.max_delete_fraction);
        // An empty read is the classic broken read (a wrong filter value, a truncated
        // source being reloaded): never taken for "every row was deleted".
        if (!allow && t.source_rows == 0 && dest_rows > 0)
            throw refuse(fmt::format("the source table returned no rows{} while the destination "
                                     "has {}: the delete check would delete them all",
                                     cfg.filter ? " under the entry's filter" : "", dest_rows));
    };
    bool keep_changed = conflicts::keeps_destination_changes(cfg);
    if (keep_changed)
        conflicts::lock_writers(dst, settings.dest_schema, cfg);
    auto on_found = [&](const diff::Found &found) {
        result.missing_in_dest += static_cast<std::int64_t>(found.missing.size());
        if (found.extra.empty())
            return;
        pg::Params params;
        auto match = diff::key_in(sides.dst, "t", found.extra, params);
        if (keep_changed) {
            // Rows changed in the destination are not deleted (target_wins, manual).
            pg::Params held_params;
            auto held = diff::key_in(sides.dst, "t", found.extra, held_params);
            result.conflicts +=
                conflicts::check_deleted(dst, settings.dest_schema, cfg, table, held, held_params);
            match += " AND " + conflicts::spare_touched(dst, settings.dest_schema, cfg, table, "t");
        }
        std::string sql =
            cfg.deletes == config::Deletes::soft
                ? fmt::format("UPDATE ONLY {0} AS t SET {1} = pg_catalog.now() WHERE {2} AND "
                              "t.{1} IS NULL",
                              sides.dst.relation, deleted_at, match)
                : fmt::format("DELETE FROM ONLY {} AS t WHERE {}", sides.dst.relation, match);
        result.rows_deleted += dst.exec(sql, params, pg::Expect::command).affected_rows();
    };
    diff::compare(sides.src, sides.dst, sides.options, on_counts, on_found);
    if (!allow && result.rows_deleted > limit)
        throw refuse(fmt::format("the delete check would delete {} of the destination's {} rows "
                                 "({:.1f}%), more than \"max_delete_fraction\" {} allows",
                                 result.rows_deleted, dest_rows,
                                 100.0 * static_cast<double>(result.rows_deleted) /
                                     static_cast<double>(std::max<std::int64_t>(dest_rows, 1)),
                                 cfg.max_delete_fraction));
    if (result.missing_in_dest > 0)
        log::warn(cfg.destination,
                  "{} source row(s) are missing in the destination although their replication "
                  "key is below the mark (written with an old \"{}\"?); `pgincr verify --repair "
                  "{}` copies them",
                  result.missing_in_dest, cfg.replication_key, cfg.destination);
    fault::point("deletes-after-delete");
    return result;
}

} // namespace pgincr::deletes
