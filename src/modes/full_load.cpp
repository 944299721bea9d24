#include "modes/full_load.hpp"

#include "apply/conflicts.hpp"
#include "apply/deletes.hpp"
#include "dest/ddl.hpp"
#include "dest/progress.hpp"
#include "source/dump.hpp"
#include "source/filter.hpp"
#include "util/fault.hpp"
#include "util/log.hpp"
#include "util/progress.hpp"

#include <fmt/format.h>

namespace pgincr::full_load {

config::LoadVia choose_via(const config::Settings &settings, const config::Table &cfg) {
    return cfg.filter ? config::LoadVia::copy : settings.load_via;
}

Result run(pg::Snapshot &snapshot, pg::Connection &dst, const config::Settings &settings,
           const config::Table &cfg, const catalog::SourceTable &table,
           const watermark::Horizon &horizon, const apply::Heartbeat &heartbeat,
           state::TableState &next) {
    Result result;
    pg::Connection &src = snapshot.conn();
    const std::string &dschema = settings.dest_schema;
    auto via = choose_via(settings, cfg);

    if (table.key) {
        // The first mark comes from the same snapshot as the rows.
        auto pos = watermark::read_position(src, table, std::nullopt, horizon, 0, cfg.filter);
        result.watermark = pos.new_mark;
        result.lag_seconds = pos.lag_seconds;
    }

    ddl::ensure_schema(dst, dschema);
    pg::Transaction tx(dst);
    std::string shadow_table = ddl::shadow_name(cfg.destination);
    std::string shadow = dst.qualified(dschema, shadow_table);
    dst.exec(fmt::format("DROP TABLE IF EXISTS {}", shadow)); // a killed load's leftover
    ddl::create_table(dst, shadow, table, cfg);

    Progress progress(cfg.destination, "loading", table.estimated_rows);
    if (via == config::LoadVia::pg_dump) {
        pg::CopyIn in(
            dst, fmt::format("COPY {} ({}) FROM STDIN", shadow, catalog::column_list(dst, table)));
        dump::Request req{settings.source, snapshot.exported(), table.schema, table.name};
        dump::stream_table(
            req, in, [&](std::int64_t rows, std::int64_t bytes) { progress.update(rows, bytes); });
        result.rows = in.finish();
    } else {
        std::string pred;
        if (cfg.filter)
            pred = " WHERE (" +
                   filter::for_copy(src, src.qualified(table.schema, table.name), *cfg.filter) +
                   ")";
        result.rows = apply::copy_rows(src, dst, table, pred, shadow, progress, heartbeat);
    }
    progress.finish();
    // Everything of the source is read: from here on only the destination works, and
    // a source session that dies cannot fail a table whose rows already landed.
    snapshot.close();

    fault::point("load-after-copy");
    if (heartbeat)
        heartbeat(); // a signal during the copy stops here, before the index build
    ddl::create_indexes(dst, shadow, cfg, table);
    fault::point("load-before-swap");
    ddl::swap_in(dst, dschema, shadow_table, cfg.destination);
    // A cdc table's changes are staged in a temporary table of the stream's session.
    if (cfg.mode != config::Mode::cdc)
        ddl::create_staging(dst, dschema, cfg, table);
    // The new table has no trigger yet, and equals the source: nothing is kept.
    conflicts::prepare(dst, dschema, cfg, table, true);
    result.dest_signature = catalog::dest_signature(dst, dschema, cfg.destination).value_or("");
    next.watermark = result.watermark;
    next.dest_signature = result.dest_signature;
    // A whole copy leaves no deleted row behind: it counts as a delete check.
    if (cfg.deletes != config::Deletes::ignore)
        next.deletes_checked_at = deletes::now(dst);
    progress::save(dst, dschema, next); // committed with the rows it describes
    if (heartbeat)
        heartbeat();
    fault::point("load-before-commit");
    tx.commit();
    // Fresh statistics for the merges that follow; cheap (a sample), and outside the
    // swap transaction so readers are not held.
    // The rows and their mark are committed: a failed ANALYZE only costs a plan.
    try {
        dst.exec(fmt::format("ANALYZE {}", dst.qualified(dschema, cfg.destination)));
    } catch (const pg::PgError &e) {
        log::warn(cfg.destination, "ANALYZE after the load failed ({}); autovacuum will do it",
                  e.what());
    }
    return result;
}

} // namespace pgincr::full_load
