#include "modes/incremental.hpp"

#include "apply/conflicts.hpp"
#include "apply/deletes.hpp"
#include "dest/ddl.hpp"
#include "dest/progress.hpp"
#include "source/filter.hpp"
#include "util/fault.hpp"
#include "util/progress.hpp"

#include <fmt/format.h>

namespace pgincr::incremental {

Result run(pg::Snapshot &snapshot, pg::Connection &dst, const config::Settings &settings,
           const config::Table &cfg, const catalog::SourceTable &table,
           const std::optional<std::string> &mark, const watermark::Horizon &horizon,
           const apply::Heartbeat &heartbeat, state::TableState &next, const DeleteCheck &deletes) {
    Result result;
    pg::Connection &src = snapshot.conn();
    std::string source_rel = src.qualified(table.schema, table.name);
    auto pos =
        watermark::read_position(src, table, mark, horizon, cfg.lookback_seconds, cfg.filter);
    result.watermark = pos.new_mark;
    result.lag_seconds = pos.lag_seconds;

    // COPY takes no parameters: the bound is stored with set_config() through a bound
    // parameter and read back, typed as the key itself, by an InitPlan evaluated once.
    std::vector<std::string> preds;
    if (pos.read_from) {
        src.exec("SELECT pg_catalog.set_config('pgincr.mark', $1, true)", {pos.read_from},
                 pg::Expect::value);
        preds.push_back(fmt::format("{} >= (SELECT pg_catalog.current_setting('pgincr.mark')::{})",
                                    src.quote_ident(table.key->name), table.key->source_type));
    }
    if (cfg.filter)
        preds.push_back("(" + filter::for_copy(src, source_rel, *cfg.filter) + ")");
    std::string where_sql;
    for (const auto &p : preds)
        where_sql += (where_sql.empty() ? " WHERE " : " AND ") + p;

    std::string staging = dst.qualified(settings.dest_schema, ddl::staging_name(cfg.destination));
    pg::Transaction tx(dst);
    conflicts::prepare(dst, settings.dest_schema, cfg, table, false);
    // Empty already: the merge empties it in the transaction that filled it. A DELETE
    // costs nothing on an empty table, where a TRUNCATE made a new file on every run
    // (1-2 ms of a sync with no changes); it still clears what a hand put there.
    dst.exec(fmt::format("DELETE FROM {}", staging));
    Progress progress(cfg.destination, "copying changes", 0);
    result.rows_copied = apply::copy_rows(src, dst, table, where_sql, staging, progress, heartbeat);
    progress.finish();
    // The rows and the mark are read: the source is released before the merge, unless
    // the delete check still has to read its keys in this snapshot.
    if (!deletes.run)
        snapshot.close();

    fault::point("incremental-after-copy");
    if (heartbeat)
        heartbeat(); // a signal during the copy stops here, before the merge
    if (result.rows_copied > 0)
        result.rows_merged = apply::merge_staged(
            dst, dst.qualified(settings.dest_schema, cfg.destination), staging, cfg, table,
            settings.dest_schema, &result.conflicts, true, result.rows_copied);
    if (deletes.run) {
        if (heartbeat)
            heartbeat();
        auto del = deletes::run(src, dst, settings, cfg, table, deletes.allow);
        result.rows_deleted = del.rows_deleted;
        result.conflicts += del.conflicts;
        next.deletes_checked_at = deletes::now(dst);
        snapshot.close();
    }
    next.watermark = result.watermark;
    progress::save(dst, settings.dest_schema, next); // committed with the merged rows
    if (heartbeat)
        heartbeat();
    fault::point("incremental-before-commit");
    tx.commit();
    return result;
}

} // namespace pgincr::incremental
