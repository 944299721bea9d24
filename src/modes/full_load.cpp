#include "load.hpp"

#include "dump.hpp"
#include "filter.hpp"
#include "merge.hpp"
#include "pg/copy.hpp"
#include "util/fault.hpp"
#include "util/hash.hpp"
#include "util/log.hpp"
#include "util/progress.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pgincr::load {

namespace {

// Short and fixed-length, so that it never collides with a user's table after the
// server truncates long identifiers to 63 bytes.
std::string shadow_name(const std::string &destination) {
    return "_pgincr_load_" + hash::sha256_hex(destination).substr(0, 16);
}

std::string create_table_sql(const pg::Connection &dst, const std::string &qualified,
                             const catalog::SourceTable &table) {
    std::vector<std::string> defs;
    for (const auto &c : table.columns) {
        std::string def = fmt::format("{} {}", dst.quote_ident(c.name), c.dest_type);
        if (c.generated)
            def += fmt::format(" GENERATED ALWAYS AS ({}) STORED", *c.generated);
        if (c.not_null)
            def += " NOT NULL";
        defs.push_back(std::move(def));
    }
    return fmt::format("CREATE TABLE {} ({})", qualified, fmt::join(defs, ", "));
}

} // namespace

std::string staging_name(const std::string &destination) {
    return destination + "_stg";
}

std::int64_t copy_rows(pg::Connection &src, pg::Connection &dst, const catalog::SourceTable &table,
                       const std::string &where_sql, const std::string &target,
                       Progress &progress) {
    return pg::copy_between(
        src,
        fmt::format("COPY (SELECT {} FROM ONLY {}{}) TO STDOUT (FORMAT binary)",
                    catalog::select_list(src, table), src.qualified(table.schema, table.name),
                    where_sql),
        dst,
        fmt::format("COPY {} ({}) FROM STDIN (FORMAT binary)", target,
                    catalog::column_list(dst, table)),
        [&](std::int64_t rows, std::int64_t bytes) { progress.update(rows, bytes); });
}

config::LoadVia choose_via(const config::Settings &settings, const config::Table &cfg) {
    return cfg.filter ? config::LoadVia::copy : settings.load_via;
}

void create_indexes(pg::Connection &dst, const std::string &qualified, const config::Table &cfg,
                    const catalog::SourceTable &table) {
    merge::Spec spec;
    for (const auto &u : table.unique_cols)
        spec.unique.push_back(dst.quote_ident(u));
    if (table.key)
        spec.key = dst.quote_ident(table.key->name);
    spec.append = cfg.mode == config::Mode::incremental_append;
    if (cfg.mode != config::Mode::full_refresh || !spec.unique.empty()) {
        // NULLS NOT DISTINCT (PostgreSQL 15+) makes a NULL in a unique column match
        // itself, so such rows merge instead of piling up.
        bool nnd = dst.server_version() >= 150000;
        dst.exec(fmt::format("CREATE UNIQUE INDEX ON {} ({}){}", qualified,
                             fmt::join(merge::conflict_columns(spec), ", "),
                             nnd ? " NULLS NOT DISTINCT" : ""));
    }
    if (cfg.indexes != config::Indexes::all)
        return;
    for (const auto &idx : table.indexes) {
        // Other unique indexes become plain ones: a merge applies rows one at a time
        // and could trip over a uniqueness the source only holds at commit.
        dst.exec(fmt::format("CREATE INDEX ON {} USING {} ({}){}", qualified,
                             dst.quote_ident(idx.method), fmt::join(idx.key_exprs, ", "),
                             idx.predicate ? " WHERE " + *idx.predicate : ""));
    }
}

void create_staging(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
                    const catalog::SourceTable &table) {
    std::vector<std::string> defs;
    for (const auto *c : table.copied_columns())
        defs.push_back(fmt::format("{} {}", dst.quote_ident(c->name), c->dest_type));
    std::string stg = dst.qualified(schema, staging_name(cfg.destination));
    dst.exec(fmt::format("DROP TABLE IF EXISTS {}", stg));
    dst.exec(fmt::format("CREATE UNLOGGED TABLE {} ({})", stg, fmt::join(defs, ", ")));
}

Result full_load(pg::Connection &src, pg::Connection &dst, const config::Settings &settings,
                 const config::Table &cfg, const catalog::SourceTable &table,
                 const watermark::Horizon &horizon) {
    Result result;
    const std::string &dschema = settings.dest_schema;
    auto via = choose_via(settings, cfg);
    // pg_dump reads in this transaction's snapshot; the COPY path reads in the
    // transaction itself.
    std::string snapshot;
    if (via == config::LoadVia::pg_dump)
        snapshot = src.exec("SELECT pg_catalog.pg_export_snapshot()", pg::Expect::value).text(0, 0);
    std::string source_rel = src.qualified(table.schema, table.name);

    if (table.key) {
        // The first mark comes from the same snapshot as the rows.
        auto pos = watermark::read_position(src, table, std::nullopt, horizon, 0, cfg.filter);
        result.watermark = pos.new_mark;
        result.lag_seconds = pos.lag_seconds;
    }

    // CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
    // exists, which a role that only owns the schema lacks: look first.
    if (dst.exec("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", {dschema},
                 pg::Expect::rows)
            .rows() == 0)
        dst.exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {}", dst.quote_ident(dschema)));
    pg::Transaction tx(dst);
    std::string shadow = dst.qualified(dschema, shadow_name(cfg.destination));
    dst.exec(fmt::format("DROP TABLE IF EXISTS {}", shadow)); // a killed load's leftover
    dst.exec(create_table_sql(dst, shadow, table));

    Progress progress(cfg.destination, "loading", table.estimated_rows);
    if (via == config::LoadVia::pg_dump) {
        pg::CopyIn in(
            dst, fmt::format("COPY {} ({}) FROM STDIN", shadow, catalog::column_list(dst, table)));
        dump::Request req{settings.source, snapshot, table.schema, table.name};
        dump::stream_table(
            req, in, [&](std::int64_t rows, std::int64_t bytes) { progress.update(rows, bytes); });
        result.rows = in.finish();
    } else {
        std::string pred;
        if (cfg.filter)
            pred = " WHERE (" + filter::for_copy(src, source_rel, *cfg.filter) + ")";
        result.rows = copy_rows(src, dst, table, pred, shadow, progress);
    }
    progress.finish();

    fault::point("load-after-copy");
    create_indexes(dst, shadow, cfg, table);
    std::string target = dst.qualified(dschema, cfg.destination);
    // Readers keep the old table until this point; the swap waits for them at most
    // this long, then the load fails and is retried by the next run.
    dst.exec("SET LOCAL lock_timeout = '5min'");
    dst.exec(fmt::format("DROP TABLE IF EXISTS {}", target));
    dst.exec(fmt::format("ALTER TABLE {} RENAME TO {}", shadow, dst.quote_ident(cfg.destination)));
    create_staging(dst, dschema, cfg, table);
    result.dest_signature = catalog::dest_signature(dst, dschema, cfg.destination).value_or("");
    fault::point("load-before-commit");
    tx.commit();
    // Fresh statistics for the merges that follow; cheap (a sample), and outside the
    // swap transaction so readers are not held.
    dst.exec(fmt::format("ANALYZE {}", target));
    return result;
}

} // namespace pgincr::load
