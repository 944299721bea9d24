#include "dest/ddl.hpp"

#include "diff/table_sides.hpp"

#include "apply/merge.hpp"
#include "util/hash.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pgincr::sql {
extern const std::string_view carry_over;
extern const std::string_view user_indexes;
extern const std::string_view dependent_views;
} // namespace pgincr::sql

namespace pgincr::ddl {

std::string staging_name(const std::string &destination) {
    return destination + "_stg";
}

std::string shadow_name(const std::string &destination) {
    return "_pgincr_load_" + hash::sha256_hex(destination).substr(0, 16);
}

void ensure_schema(pg::Connection &dst, const std::string &schema) {
    // CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
    // exists, which a role that only owns the schema lacks: look first.
    if (dst.exec("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", {schema},
                 pg::Expect::rows)
            .rows() == 0)
        dst.exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {}", dst.quote_ident(schema)));
}

void create_table(pg::Connection &dst, const std::string &qualified,
                  const catalog::SourceTable &table, const config::Table &cfg) {
    std::vector<std::string> defs;
    for (const auto &c : table.columns) {
        std::string def = fmt::format("{} {}", dst.quote_ident(c.name), c.dest_type);
        if (c.generated)
            def += fmt::format(" GENERATED ALWAYS AS ({}) STORED", *c.generated);
        if (c.not_null)
            def += " NOT NULL";
        defs.push_back(std::move(def));
    }
    if (cfg.deletes == config::Deletes::soft)
        defs.push_back(dst.quote_ident(diff::deleted_at_column) + " timestamptz");
    dst.exec(fmt::format("CREATE TABLE {} ({})", qualified, fmt::join(defs, ", ")));
}

void create_indexes(pg::Connection &dst, const std::string &qualified, const config::Table &cfg,
                    const catalog::SourceTable &table, const std::string &name_prefix) {
    auto name = [&](const std::string &suffix) {
        return name_prefix.empty() ? std::string() : dst.quote_ident(name_prefix + suffix) + " ";
    };
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
        dst.exec(fmt::format("CREATE UNIQUE INDEX {}ON {} ({}){}", name("u"), qualified,
                             fmt::join(merge::conflict_columns(spec), ", "),
                             nnd ? " NULLS NOT DISTINCT" : ""));
    }
    if (cfg.indexes != config::Indexes::all)
        return;
    int n = 0;
    for (const auto &idx : table.indexes) {
        // Other unique indexes become plain ones: a merge applies rows one at a time
        // and could trip over a uniqueness the source only holds at commit.
        dst.exec(fmt::format("CREATE INDEX {}ON {} USING {} ({}){}", name(std::to_string(++n)),
                             qualified, dst.quote_ident(idx.method), fmt::join(idx.key_exprs, ", "),
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

namespace {

// A view (or materialized view) built on the table, to be dropped before the swap and
// recreated on the new table in the same transaction.
struct DependentView {
    std::string qualified;
    std::string kind; // VIEW or MATERIALIZED VIEW
    std::string definition;
    std::string options;
    std::vector<std::string> keep; // grants, comment, owner
};

std::vector<std::string> carry_over(pg::Connection &dst, const std::string &relation,
                                    const std::string &kind) {
    std::vector<std::string> out;
    auto res = dst.exec(sql::carry_over, {relation, relation, kind}, pg::Expect::rows);
    for (int i = 0; i < res.rows(); ++i)
        out.emplace_back(res.text(i, 0));
    return out;
}

} // namespace

void swap_in(pg::Connection &dst, const std::string &schema, const std::string &shadow,
             const std::string &destination) {
    std::string target = dst.qualified(schema, destination);
    // Grants to analysts, a comment, another owner, their indexes and views: read from
    // the old table before it goes, given to the new one right after.
    std::vector<std::string> keep;
    std::vector<std::pair<std::string, std::string>> indexes; // statement, index name
    std::vector<DependentView> views;
    if (catalog::relation_exists(dst, schema, destination)) {
        keep = carry_over(dst, target, "TABLE");
        auto idx = dst.exec(sql::user_indexes, {target, dst.qualified(schema, shadow), target},
                            pg::Expect::rows);
        for (int i = 0; i < idx.rows(); ++i)
            indexes.emplace_back(idx.text(i, 0), idx.text(i, 1));
        auto deps = dst.exec(sql::dependent_views, {target}, pg::Expect::rows);
        for (int i = 0; i < deps.rows(); ++i) {
            DependentView v{std::string(deps.text(i, 0)),
                            std::string(deps.text(i, 1)),
                            std::string(deps.text(i, 2)),
                            std::string(deps.text(i, 3)),
                            {}};
            v.keep = carry_over(dst, v.qualified, v.kind);
            views.push_back(std::move(v));
        }
        // Deepest first: a view on a view goes before the view it reads.
        for (auto it = views.rbegin(); it != views.rend(); ++it) {
            std::string drop = fmt::format("DROP {} {}", it->kind, it->qualified);
            try {
                dst.exec(drop);
            } catch (const pg::PgError &e) {
                throw pg::PgError(pg::Side::dest, e.sqlstate(),
                                  fmt::format("cannot replace {} {}, which depends on the table: "
                                              "{}; {}. Nothing was changed",
                                              it->kind, it->qualified, e.server_message(),
                                              e.sqlstate() == "2BP01"
                                                  ? "other objects depend on it in turn"
                                                  : "pgincr's role must own it or be a member "
                                                    "of its owner's role"),
                                  drop);
            }
        }
    }
    dst.exec(fmt::format("DROP TABLE IF EXISTS {}", target));
    dst.exec(fmt::format("ALTER TABLE {} RENAME TO {}", dst.qualified(schema, shadow),
                         dst.quote_ident(destination)));
    for (const auto &statement : keep)
        dst.exec(statement);
    for (const auto &[statement, name] : indexes) {
        try {
            dst.exec(statement);
        } catch (const pg::PgError &e) {
            throw pg::PgError(
                pg::Side::dest, e.sqlstate(),
                fmt::format("cannot rebuild index \"{}\".\"{}\", which a user created on the "
                            "table, on the reloaded table: {}; the old table, its indexes and "
                            "the state are unchanged. Drop or change the index, then sync again",
                            schema, name, e.server_message()),
                statement);
        }
    }
    // Shallowest first; a materialized view is filled from the new rows as it is created.
    for (const auto &v : views) {
        std::string create =
            fmt::format("CREATE {} {}{} AS {}", v.kind, v.qualified,
                        v.options.empty() ? "" : " WITH (" + v.options + ")", v.definition);
        try {
            dst.exec(create);
            for (const auto &statement : v.keep)
                dst.exec(statement);
        } catch (const pg::PgError &e) {
            throw pg::PgError(
                pg::Side::dest, e.sqlstate(),
                fmt::format("cannot recreate {} {} on the reloaded table: {}; the old table, the "
                            "view and the state are unchanged. Drop or change the view, then sync "
                            "again",
                            v.kind == "VIEW" ? "view" : "materialized view", v.qualified,
                            e.server_message()),
                create);
        }
    }
}

} // namespace pgincr::ddl
