#include "commands/check.hpp"

#include "cdc/publication.hpp"
#include "cdc/source_setup.hpp"
#include "config.hpp"
#include "dest/ownership.hpp"
#include "modes/full_load.hpp"
#include "modes/table_sync.hpp"
#include "source/catalog.hpp"
#include "source/watermark.hpp"
#include "state.hpp"
#include "util/error.hpp"
#include "util/text.hpp"
#include "webhook.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <iostream>
#include <memory>

namespace pgincr::sql {
extern const std::string_view unreadable_sequences;
}

namespace pgincr::commands {

namespace {

void say(const std::string &line) {
    std::cout << line << '\n' << std::flush;
}

std::unique_ptr<pg::Connection> connect(const pg::ConnInfo &info) {
    try {
        auto conn = std::make_unique<pg::Connection>(info);
        auto version =
            conn->exec("SELECT pg_catalog.current_setting('server_version')", pg::Expect::value);
        say(fmt::format("{}: ok, {} (PostgreSQL {})", pg::side_name(info.side), info.describe(),
                        version.text(0, 0)));
        return conn;
    } catch (const pg::PgError &e) {
        say(fmt::format("{}: ERROR {}", pg::side_name(info.side), e.server_message()));
        return nullptr;
    }
}

std::string next_action(const table_sync::Plan &p, const std::optional<state::TableState> &s) {
    switch (p.mode) {
    case SyncMode::initial:
        return "initial load (" + p.reason + ")";
    case SyncMode::reset:
        return "reset: full reload (" + p.reason + ")";
    case SyncMode::incremental:
        if (p.legacy_mark)
            return "incremental, taking over incremental-replication's cursor " + *p.legacy_mark;
        return "incremental from mark " +
               (s && s->watermark ? *s->watermark : std::string("(none: every row)"));
    default:
        return "skipped";
    }
}

// The source's side of the cdc mode: logical decoding, the role, the slot and the
// publication. False when a cdc table cannot sync.
bool check_cdc(pg::Connection &src, const config::Settings &settings,
               const std::vector<config::Table> &tables) {
    bool ok = true;
    try {
        for (const auto &p : cdc::source_problems(src, settings.source.user)) {
            say("cdc: ERROR " + p);
            ok = false;
        }
        if (auto w = cdc::unbounded_slot_warning(src))
            say("cdc: WARNING " + *w);
        auto slot = cdc::slot_status(src, settings.slot);
        if (!slot.exists)
            say(fmt::format("cdc: replication slot \"{}\" does not exist yet; the first sync "
                            "creates it",
                            settings.slot));
        else if (slot.lost()) {
            say(fmt::format("cdc: ERROR replication slot \"{}\" was invalidated (wal_status "
                            "lost); run `pgincr reset` for the cdc tables, then sync: they are "
                            "reloaded under a new slot",
                            settings.slot));
            ok = false;
        } else
            say(fmt::format("cdc: replication slot \"{}\" ok, wal_status {}, retains {} bytes",
                            settings.slot, slot.wal_status.value_or("?"),
                            slot.retained_bytes.value_or(0)));

        std::vector<cdc::SourceName> wanted;
        for (const auto &t : tables)
            if (t.mode == config::Mode::cdc)
                wanted.emplace_back(settings.source_schema, t.name);
        auto pub = cdc::read_publication(src, settings.publication);
        std::string qpub = src.quote_ident(settings.publication);
        // CREATE PUBLICATION ... FOR TABLE needs CREATE on the database and each table's
        // ownership.
        auto may = src.exec(
            "SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE') "
            "AND coalesce(pg_catalog.bool_and(pg_catalog.pg_has_role(c.relowner, 'USAGE')), "
            "true) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = "
            "c.relnamespace WHERE n.nspname = $1 AND c.relname = ANY ($2::text[])",
            {settings.source_schema, text::array_literal([&] {
                 std::vector<std::optional<std::string>> names;
                 for (const auto &w : wanted)
                     names.push_back(w.second);
                 return names;
             }())},
            pg::Expect::value);
        bool may_change = may.boolean(0, 0);
        std::vector<cdc::SourceName> missing;
        for (const auto &w : wanted)
            if (!pub.carries(w))
                missing.push_back(w);
        if (!pub.exists) {
            if (may_change)
                say(fmt::format("cdc: publication {} does not exist yet; the first sync creates "
                                "it",
                                qpub));
            else {
                say(fmt::format("cdc: ERROR role \"{}\" may not create publication {}; ask a "
                                "DBA to run on the source: {}",
                                settings.source.user, qpub,
                                cdc::create_publication_sql(src, settings.publication, wanted)));
                ok = false;
            }
        } else if (!missing.empty()) {
            std::vector<std::string> names;
            for (const auto &m : missing)
                names.push_back(src.qualified(m.first, m.second));
            std::string sql =
                fmt::format("ALTER PUBLICATION {} ADD TABLE {};", qpub, fmt::join(names, ", "));
            if (pub.ours && may_change)
                say(fmt::format("cdc: publication {} lacks {}; the next sync adds it", qpub,
                                fmt::join(names, ", ")));
            else {
                say(fmt::format("cdc: ERROR publication {} lacks {}; run on the source: {}", qpub,
                                fmt::join(names, ", "), sql));
                ok = false;
            }
        } else {
            say(fmt::format("cdc: publication {} ok{}", qpub,
                            pub.ours ? "" : " (not created by pgincr: kept as it is)"));
        }
    } catch (const std::exception &e) {
        say(fmt::format("cdc: ERROR {}", e.what()));
        ok = false;
    }
    return ok;
}

} // namespace

int check(const cli::Options &o) {
    auto settings = config::load_settings(o.env_file, config::process_environment());
    auto tables = config::load_tables(o.config_file);
    state::Store store(o.state_dir);

    auto src = connect(settings.source);
    auto dst = connect(settings.dest);
    if (!src || !dst)
        return exit_table_failed;

    bool blocked = false;
    std::unique_ptr<pg::Connection> primary;
    bool standby = watermark::in_recovery(*src);
    if (standby && settings.source_primary) {
        primary = connect(*settings.source_primary);
        if (!primary)
            return exit_table_failed;
    } else if (settings.source_primary) {
        say("source: note: the source is not a standby, so SOURCE_PRIMARY_HOST is not used");
    }
    const auto &horizon_role = primary ? settings.source_primary->user : settings.source.user;
    try {
        auto horizon =
            watermark::read_horizon(*src, primary.get(), settings.fallback_lookback_seconds);
        if (horizon.from_primary)
            say(fmt::format("source: hot standby; the late-commit guard reads the open "
                            "transactions on the primary {} and waits for the standby to replay "
                            "up to the primary's position before each snapshot",
                            settings.source_primary->describe()));
        else if (horizon.standby)
            say("source: WARNING " + watermark::standby_warning(settings));
        if (!horizon.sees_all)
            say(fmt::format("source: WARNING role \"{}\" cannot see other roles' transactions, "
                            "so the late-commit guard falls back to a {} s window; run: GRANT "
                            "pg_read_all_stats TO \"{}\";",
                            horizon_role, settings.fallback_lookback_seconds, horizon_role));
    } catch (const std::exception &e) {
        say(fmt::format("source: ERROR {}", e.what()));
        blocked = true;
    }
    auto can_create = dst->exec(
        "SELECT CASE WHEN n.oid IS NULL THEN pg_catalog.has_database_privilege("
        "pg_catalog.current_database(), 'CREATE') ELSE pg_catalog.has_schema_privilege(n.oid, "
        "'CREATE') END, n.oid IS NOT NULL FROM (SELECT 1) x LEFT JOIN pg_catalog.pg_namespace n "
        "ON n.nspname = $1",
        {settings.dest_schema}, pg::Expect::one_row);
    if (!can_create.boolean(0, 0)) {
        say(fmt::format("dest: ERROR role \"{}\" cannot create tables in {} \"{}\"",
                        settings.dest.user, can_create.boolean(0, 1) ? "schema" : "database",
                        can_create.boolean(0, 1) ? settings.dest_schema : settings.dest.dbname));
        blocked = true;
    } else if (!can_create.boolean(0, 1)) {
        say(fmt::format("dest: schema \"{}\" does not exist yet; the first sync creates it",
                        settings.dest_schema));
    }

    if (config::any_cdc(tables) && !check_cdc(*src, settings, tables))
        blocked = true;

    for (const auto &cfg : tables) {
        std::string label = cfg.destination == cfg.name
                                ? cfg.name
                                : fmt::format("{} -> {}", cfg.name, cfg.destination);
        try {
            pg::Transaction tx(*src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
            auto table = catalog::describe_source(*src, settings.source_schema, cfg);
            if (table.key && !table.errors.size()) {
                std::string key = src->quote_ident(table.key->name);
                if (!table.key_indexed)
                    table.warnings.push_back(fmt::format(
                        "no index on replication_key \"{}\": every sync scans the whole table; "
                        "consider CREATE INDEX ON {} ({})",
                        table.key->name, src->qualified(table.schema, table.name), key));
                if (!table.key->not_null) {
                    auto nulls = src->exec(
                        fmt::format("SELECT EXISTS (SELECT 1 FROM ONLY {} WHERE {} IS NULL)",
                                    src->qualified(table.schema, table.name), key),
                        pg::Expect::value);
                    if (nulls.boolean(0, 0))
                        table.warnings.push_back(fmt::format(
                            "rows with a NULL \"{}\" exist: they travel only with full loads",
                            table.key->name));
                }
            }
            if (table.oid && full_load::choose_via(settings, cfg) == config::LoadVia::pg_dump) {
                auto seqs = src->exec(sql::unreadable_sequences, {std::to_string(table.oid)},
                                      pg::Expect::rows);
                for (int i = 0; i < seqs.rows(); ++i)
                    table.errors.push_back(fmt::format(
                        "role \"{}\" cannot read sequence {}, which pg_dump dumps with the "
                        "table; run: GRANT SELECT ON SEQUENCE {} TO \"{}\";",
                        settings.source.user, seqs.text(i, 0), seqs.text(i, 0),
                        settings.source.user));
            }
            if (table.oid && table.can_write)
                table.warnings.push_back(fmt::format(
                    "role \"{}\" can write to this table; pgincr never writes to the source, but "
                    "a read-only role is safer",
                    settings.source.user));
            if (cfg.mode == config::Mode::cdc && table.errors.empty()) {
                auto why = cdc::replica_identity_problem(*src, settings.source_schema, cfg.name,
                                                         table.unique_cols);
                if (!why.empty())
                    table.errors.push_back(why);
            }
            if (!table.errors.empty()) {
                blocked = true;
                for (const auto &e : table.errors)
                    say(fmt::format("{}: ERROR {}", label, e));
            } else if (cfg.mode == config::Mode::cdc) {
                auto saved = table_sync::load_saved(*dst, settings, cfg, store);
                say(fmt::format("{}: ok, next sync: {}", label,
                                !saved ? "initial load under the slot's snapshot"
                                : saved->lsn && !saved->reset_requested
                                    ? "streams changes from position " + *saved->lsn
                                    : "reload under a new snapshot, then streams"));
            } else {
                auto saved = table_sync::load_saved(*dst, settings, cfg, store);
                auto p = table_sync::plan(*dst, settings, cfg, table, store, saved);
                std::optional<std::string> taken;
                if (p.mode != SyncMode::incremental)
                    taken = ownership::conflict(
                        *dst, settings.dest_schema, cfg,
                        {saved.has_value(),
                         !saved && table_sync::legacy_cursor(store, cfg).has_value(), false});
                if (taken) {
                    blocked = true;
                    say(fmt::format("{}: ERROR {}", label, *taken));
                } else {
                    say(fmt::format("{}: ok, next sync: {}", label, next_action(p, saved)));
                }
            }
            for (const auto &w : table.warnings)
                say(fmt::format("{}: WARNING {}", label, w));
        } catch (const std::exception &e) {
            blocked = true;
            say(fmt::format("{}: ERROR {}", label, e.what()));
        }
    }

    if (!settings.webhook.url.empty()) {
        // One attempt: a dead endpoint should not keep `check` waiting through retries.
        auto quick = settings.webhook;
        quick.attempts = 1;
        auto d = webhook::check(quick, settings.pipeline_name);
        if (d.delivered)
            say(fmt::format("webhook: ok, {} answered HTTP {}",
                            webhook::redact_url(settings.webhook.url), d.last_http_status));
        else
            say(fmt::format("webhook: WARNING {} did not accept the check POST: {}",
                            webhook::redact_url(settings.webhook.url), d.last_error));
    }
    return blocked ? exit_table_failed : exit_ok;
}

} // namespace pgincr::commands
