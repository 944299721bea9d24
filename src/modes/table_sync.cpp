#include "modes/table_sync.hpp"

#include "apply/deletes.hpp"
#include "dest/ddl.hpp"
#include "dest/ownership.hpp"
#include "dest/progress.hpp"
#include "modes/full_load.hpp"
#include "modes/incremental.hpp"
#include "pg/snapshot.hpp"
#include "source/watermark.hpp"
#include "util/fault.hpp"
#include "util/hash.hpp"
#include "util/log.hpp"
#include "util/signals.hpp"
#include "util/time.hpp"

#include <chrono>
#include <fmt/format.h>

namespace pgincr::table_sync {

namespace {

// The old tool stored max(key) floored to milliseconds plus 1 ms, as UTC ISO-8601.
// For timestamp without time zone it wrote local wall time as if it were UTC, in a
// zone we cannot know, so the mark is lowered by the largest UTC offset (12 h): a
// one-time re-read that cannot miss a row.
std::string legacy_mark_sql(catalog::KeyKind kind) {
    switch (kind) {
    case catalog::KeyKind::timestamptz:
        return "SELECT ($1::pg_catalog.timestamptz - interval '1 millisecond')::text";
    case catalog::KeyKind::timestamp:
        return "SELECT (($1::pg_catalog.timestamptz AT TIME ZONE 'UTC') - interval '12 hours 1 "
               "millisecond')::text";
    case catalog::KeyKind::date:
        return "SELECT (($1::pg_catalog.timestamptz AT TIME ZONE 'UTC') - interval '12 hours 1 "
               "millisecond')::pg_catalog.date::text";
    default:
        return "";
    }
}

// The old tool's destination table: same column names, in order.
bool same_column_names(pg::Connection &dst, const std::string &schema, const std::string &name,
                       const catalog::SourceTable &table) {
    auto res = dst.exec("SELECT a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class "
                        "c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = "
                        "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 "
                        "AND NOT a.attisdropped ORDER BY a.attnum",
                        {schema, name}, pg::Expect::rows);
    if (res.rows() != static_cast<int>(table.columns.size()))
        return false;
    for (int i = 0; i < res.rows(); ++i)
        if (res.text(i, 0) != table.columns[static_cast<std::size_t>(i)].name)
            return false;
    return true;
}

} // namespace

Plan decide(const config::Table &cfg, const catalog::SourceTable &table,
            const std::optional<state::TableState> &saved,
            const std::optional<std::string> &dest_sig, bool staging_exists,
            const std::optional<std::string> &legacy_mark) {
    if (!saved) {
        if (legacy_mark && dest_sig && cfg.mode != config::Mode::full_refresh &&
            table.is_time_key())
            return {SyncMode::incremental, "taking over incremental-replication's cursor",
                    legacy_mark};
        return {SyncMode::initial, "no saved state", std::nullopt};
    }
    if (cfg.mode == config::Mode::full_refresh)
        return {SyncMode::reset, "full-refresh mode", std::nullopt};
    if (saved->reset_requested)
        return {SyncMode::reset, "reset requested with `pgincr reset`", std::nullopt};
    if (saved->fingerprint != table.fingerprint)
        return {SyncMode::reset, "the source table's definition changed", std::nullopt};
    // The saved mark is a value of the old key; the rows and the unique index follow
    // the mode and filter they were loaded with.
    if (saved->replication_key != cfg.replication_key)
        return {SyncMode::reset, "the replication_key changed", std::nullopt};
    if (saved->options != config::options_signature(cfg))
        return {SyncMode::reset, "the entry's mode or filter changed", std::nullopt};
    if (!dest_sig)
        return {SyncMode::reset, "the destination table is missing", std::nullopt};
    if (!staging_exists)
        return {SyncMode::reset, "the staging table is missing", std::nullopt};
    if (*dest_sig != saved->dest_signature)
        return {SyncMode::reset, "the destination table's columns changed", std::nullopt};
    return {SyncMode::incremental, "", std::nullopt};
}

std::optional<std::string> legacy_cursor(const state::Store &store, const config::Table &cfg) {
    if (cfg.destination != cfg.name)
        return std::nullopt;
    return store.legacy_mark(cfg.name);
}

std::optional<state::TableState> load_saved(pg::Connection &dst, const config::Settings &settings,
                                            const config::Table &cfg, const state::Store &store,
                                            std::string *disagreement) {
    return progress::reconcile(store.load(cfg.destination),
                               progress::load(dst, settings.dest_schema, cfg.destination),
                               disagreement);
}

Plan plan(pg::Connection &dst, const config::Settings &settings, const config::Table &cfg,
          const catalog::SourceTable &table, const state::Store &store,
          const std::optional<state::TableState> &saved) {
    auto dest_sig = catalog::dest_signature(dst, settings.dest_schema, cfg.destination);
    bool staging =
        catalog::relation_exists(dst, settings.dest_schema, ddl::staging_name(cfg.destination));
    std::optional<std::string> legacy;
    if (!saved)
        legacy = legacy_cursor(store, cfg);
    auto p = decide(cfg, table, saved, dest_sig, staging, legacy);
    if (p.legacy_mark && !same_column_names(dst, settings.dest_schema, cfg.destination, table))
        return {SyncMode::initial,
                "incremental-replication's cursor found, but the destination "
                "table's columns differ from the source's",
                std::nullopt};
    return p;
}

namespace {

// Adopts the old tool's destination table: adds the unique index and a fresh staging
// table, and converts its cursor. Returns the mark, or nullopt to fall back to a load.
std::optional<std::string> take_over(pg::Connection &src, pg::Connection &dst,
                                     const config::Settings &settings, const config::Table &cfg,
                                     const catalog::SourceTable &table, const std::string &legacy,
                                     state::TableState next) {
    std::string mark;
    try {
        mark = std::string(
            src.exec(legacy_mark_sql(table.key_kind), {legacy}, pg::Expect::value).text(0, 0));
    } catch (const pg::PgError &e) {
        log::warn(cfg.destination,
                  "cannot read incremental-replication's cursor '{}' ({}); "
                  "loading the table whole",
                  legacy, e.server_message());
        return std::nullopt;
    }
    try {
        pg::Transaction tx(dst);
        ddl::create_indexes(dst, dst.qualified(settings.dest_schema, cfg.destination), cfg, table,
                            "_pgincr_takeover_" + hash::sha256_hex(cfg.destination).substr(0, 12) +
                                "_");
        ddl::create_staging(dst, settings.dest_schema, cfg, table);
        next.watermark = mark;
        next.dest_signature =
            catalog::dest_signature(dst, settings.dest_schema, cfg.destination).value_or("");
        progress::save(dst, settings.dest_schema, next);
        tx.commit();
    } catch (const pg::PgError &e) {
        log::warn(cfg.destination,
                  "cannot adopt the existing destination table ({}); loading it whole",
                  e.server_message());
        return std::nullopt;
    }
    log::info(cfg.destination, "took over incremental-replication's cursor {} as mark {}", legacy,
              mark);
    return mark;
}

} // namespace

TableResult sync(Sessions &sessions, const config::Settings &settings, const config::Table &cfg,
                 const state::Store &store, const Allow &allow) {
    pg::Connection &src = sessions.src;
    pg::Connection &dst = sessions.dst;
    TableResult r;
    r.name = cfg.name;
    r.destination = cfg.destination;
    r.config_mode = config::mode_name(cfg.mode);
    auto started = std::chrono::steady_clock::now();
    const std::string &tag = cfg.destination;
    std::optional<state::TableState> saved;
    // Between the steps of the table: the lock still held, and no signal waiting.
    apply::Heartbeat heartbeat = [&] {
        signals::throw_if_interrupted();
        if (sessions.lock)
            sessions.lock->ensure_held();
    };

    try {
        std::string disagreement;
        saved = load_saved(dst, settings, cfg, store, &disagreement);
        if (!disagreement.empty())
            log::warn(tag, "{}", disagreement);
        // Read before the snapshot: see watermark.hpp.
        watermark::Horizon horizon =
            sessions.horizons
                ? sessions.horizons->read(src, sessions.primary, settings.fallback_lookback_seconds)
                : watermark::read_horizon(src, sessions.primary,
                                          settings.fallback_lookback_seconds);
        log::debug(tag, "[source] late-commit horizon {} ({} open transaction(s){})", horizon.at,
                   horizon.open_transactions,
                   sessions.horizons && sessions.horizons->reused() ? ", read for the table before"
                                                                    : "");
        if (sessions.on_horizon)
            sessions.on_horizon(horizon);
        pg::Snapshot snapshot(src);
        try {
            snapshot.lock(src.qualified(settings.source_schema, cfg.name));
        } catch (const pg::PgError &e) {
            if (e.sqlstate() != "42P01")
                throw;
            throw catalog::TableError(
                fmt::format("source table \"{}\".\"{}\" does not exist (tables-config.json "
                            "entry {})",
                            settings.source_schema, cfg.name, cfg.entry));
        }
        auto table = catalog::describe_source(src, settings.source_schema, cfg);
        fault::point("snapshot-taken");
        catalog::require_syncable(table);
        auto p = plan(dst, settings, cfg, table, store, saved);

        state::TableState next;
        next.source_table = cfg.name;
        next.destination = cfg.destination;
        next.replication_key = cfg.replication_key;
        next.key_type = table.key ? table.key->source_type : "";
        next.fingerprint = table.fingerprint;
        next.options = config::options_signature(cfg);

        std::optional<std::string> mark = saved ? saved->watermark : std::nullopt;
        if (p.legacy_mark) {
            mark = take_over(src, dst, settings, cfg, table, *p.legacy_mark, next);
            if (!mark)
                p = {SyncMode::initial, "falling back from the take-over", std::nullopt};
        }
        if (p.mode != SyncMode::incremental) {
            ownership::Claim claim{saved.has_value(),
                                   !saved && legacy_cursor(store, cfg).has_value(), allow.replace};
            if (auto why = ownership::conflict(dst, settings.dest_schema, cfg, claim))
                throw catalog::TableError(*why);
        }
        r.mode = p.mode;
        if (!p.reason.empty() && p.mode != SyncMode::incremental)
            log::info(tag, "{} load: {}", sync_mode_name(p.mode), p.reason);

        if (p.mode == SyncMode::incremental) {
            next.dest_signature =
                saved && !p.legacy_mark
                    ? saved->dest_signature
                    : catalog::dest_signature(dst, settings.dest_schema, cfg.destination)
                          .value_or("");
            next.deletes_checked_at = saved ? saved->deletes_checked_at : std::nullopt;
            incremental::DeleteCheck check{deletes::due(dst, cfg, saved), allow.deletes};
            auto res = incremental::run(snapshot, dst, settings, cfg, table, mark, horizon,
                                        heartbeat, next, check);
            r.rows_copied = res.rows_copied;
            r.rows_merged = res.rows_merged;
            r.rows_deleted = res.rows_deleted;
            r.conflicts = res.conflicts;
            r.watermark = res.watermark;
            r.lag_seconds = res.lag_seconds;
        } else {
            auto res =
                full_load::run(snapshot, dst, settings, cfg, table, horizon, heartbeat, next);
            r.rows_copied = res.rows;
            r.rows_merged = res.rows;
            r.watermark = res.watermark;
            r.lag_seconds = res.lag_seconds;
            next.dest_signature = res.dest_signature;
        }
        snapshot.close(); // already closed by the mode once its rows were read
        next.watermark = r.watermark;
        r.ok = true;
        r.duration_ms = timeutil::ms_between(started, std::chrono::steady_clock::now());
        next.last_sync = state::LastSync{timeutil::iso_utc(std::chrono::system_clock::now()),
                                         sync_mode_name(r.mode),
                                         "ok",
                                         r.rows_copied,
                                         r.rows_merged,
                                         r.duration_ms,
                                         "",
                                         r.lag_seconds,
                                         r.rows_deleted,
                                         r.conflicts};
        // Saved only now, after the destination committed: a crash before this line
        // makes the next run redo the same rows, which the merge absorbs.
        fault::point("before-state-save");
        store.save(next);
        if (horizon.open_transactions > 0 && r.lag_seconds && *r.lag_seconds > 300)
            log::warn(tag, "a source transaction open since {} holds the mark back (lag {:.0f}s)",
                      horizon.oldest_start.value_or("?"), *r.lag_seconds);
    } catch (const std::exception &e) {
        r.ok = false;
        r.error = signals::interrupted() ? fmt::format("interrupted by signal {} ({})",
                                                       signals::last_signal(), e.what())
                                         : e.what();
        r.duration_ms = timeutil::ms_between(started, std::chrono::steady_clock::now());
        // With the lock lost another run may own sync-state/ now: write nothing.
        if (saved && !dynamic_cast<const lock::LockLostError *>(&e)) {
            // Only the report changes; the mark and fingerprint stay as they were.
            try {
                auto keep = *saved;
                keep.last_sync =
                    state::LastSync{timeutil::iso_utc(std::chrono::system_clock::now()),
                                    sync_mode_name(r.mode),
                                    "failed",
                                    0,
                                    0,
                                    r.duration_ms,
                                    r.error,
                                    std::nullopt};
                store.save(keep);
            } catch (...) {
            }
        }
    }
    return r;
}

} // namespace pgincr::table_sync
