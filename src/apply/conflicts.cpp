#include "apply/conflicts.hpp"

#include "apply/merge.hpp"
#include "util/hash.hpp"
#include "util/text.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pgincr::sql {
extern const std::string_view conflicts_touch;
extern const std::string_view conflicts_staged;
extern const std::string_view conflicts_deleted;
} // namespace pgincr::sql

namespace pgincr::conflicts {

namespace {

constexpr const char *trigger_name = "_pgincr_touch";
// The comment that marks a table or function as pgincr's own.
constexpr const char *marker = "pgincr: ";

std::string function_name(const std::string &destination) {
    return "_pgincr_touch_" + hash::sha256_hex(destination).substr(0, 16);
}

enum class Owner { missing, pgincr, other };

Owner owner(pg::Connection &dst, const std::string &schema, const std::string &name) {
    auto res = dst.exec("SELECT pg_catalog.obj_description(c.oid, 'pg_class') FROM "
                        "pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = "
                        "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                        {schema, name}, pg::Expect::rows);
    if (res.rows() == 0)
        return Owner::missing;
    auto comment = res.optional(0, 0);
    return comment && comment->rfind(marker, 0) == 0 ? Owner::pgincr : Owner::other;
}

// Creates `name` with `columns` unless pgincr already did; refuses a table of that
// name that is someone else's.
bool ensure_table(pg::Connection &dst, const std::string &schema, const std::string &name,
                  const std::string &columns, const std::string &what, const config::Table &cfg) {
    switch (owner(dst, schema, name)) {
    case Owner::pgincr:
        return false;
    case Owner::other:
        throw catalog::TableError(fmt::format(
            "\"{}\".\"{}\" exists and pgincr did not create it; \"conflict\": \"{}\" needs "
            "that name for {}. Rename or drop that table, or change the entry "
            "(tables-config.json entry {})",
            schema, name, config::conflict_name(cfg.conflict), what, cfg.entry));
    case Owner::missing:
        break;
    }
    std::string q = dst.qualified(schema, name);
    dst.exec(fmt::format("CREATE TABLE {} ({})", q, columns));
    dst.exec(fmt::format(
        "COMMENT ON TABLE {} IS {}", q,
        dst.quote_literal(fmt::format("{}{} of {} (conflict: {})", marker, what, cfg.destination,
                                      config::conflict_name(cfg.conflict)))));
    return true;
}

merge::Spec key_spec(pg::Connection &dst, const catalog::SourceTable &table) {
    merge::Spec spec;
    for (const auto &u : table.unique_cols) {
        spec.unique.push_back(dst.quote_ident(u));
        const auto *c = table.column(u);
        spec.unique_not_null.push_back(c && c->not_null);
    }
    return spec;
}

std::string prefixed(const std::vector<std::string> &cols, const std::string &alias) {
    std::vector<std::string> out;
    for (const auto &c : cols)
        out.push_back(alias + "." + c);
    return fmt::format("{}", fmt::join(out, ", "));
}

// The final statement of sql/conflicts_*.sql: a count, or manual's INSERT of both
// versions (`policy` is parameter $n).
std::string record(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
                   const merge::Spec &keys, std::size_t n) {
    if (cfg.conflict != config::Conflict::manual)
        return "SELECT pg_catalog.count(*) FROM c";
    return fmt::format("INSERT INTO {} (policy, key, source_row, dest_row) SELECT ${}, "
                       "c._pgincr_key, c._pgincr_row, pg_catalog.to_jsonb(d) FROM c LEFT JOIN "
                       "ONLY {} AS d ON {}",
                       dst.qualified(schema, conflicts_name(cfg.destination)), n,
                       dst.qualified(schema, cfg.destination), merge::key_match(keys, "d", "c"));
}

std::int64_t run_record(pg::Connection &dst, const config::Table &cfg, const std::string &sql,
                        const pg::Params &params) {
    if (cfg.conflict == config::Conflict::manual)
        return dst.exec(sql, params, pg::Expect::command).affected_rows();
    return dst.exec(sql, params, pg::Expect::value).integer(0, 0);
}

} // namespace

bool keeps_destination_changes(const config::Table &cfg) {
    return cfg.conflict == config::Conflict::target_wins ||
           cfg.conflict == config::Conflict::manual;
}

std::string touched_name(const std::string &destination) {
    return destination + "_pgincr_touched";
}

std::string conflicts_name(const std::string &destination) {
    return destination + "_conflicts";
}

void prepare(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
             const catalog::SourceTable &table, bool reloaded) {
    std::string target = dst.qualified(schema, cfg.destination);
    std::string touched = dst.qualified(schema, touched_name(cfg.destination));
    std::string function = dst.qualified(schema, function_name(cfg.destination));
    if (!keeps_destination_changes(cfg)) {
        // Switched back to a policy that needs none of it (the conflicts table stays: it
        // holds what a person has not resolved yet).
        if (owner(dst, schema, touched_name(cfg.destination)) != Owner::pgincr)
            return;
        if (!reloaded)
            dst.exec(fmt::format("DROP TRIGGER IF EXISTS {} ON {}", trigger_name, target));
        dst.exec(fmt::format("DROP FUNCTION IF EXISTS {}()", function));
        dst.exec(fmt::format("DROP TABLE {}", touched));
        return;
    }
    auto keys = key_spec(dst, table);
    std::vector<std::string> defs;
    for (std::size_t i = 0; i < keys.unique.size(); ++i)
        defs.push_back(fmt::format("{} {}{}", keys.unique[i],
                                   table.column(table.unique_cols[i])->dest_type,
                                   keys.unique_not_null[i] ? " NOT NULL" : ""));
    defs.push_back("_pgincr_touched_at timestamptz NOT NULL DEFAULT pg_catalog.now()");
    defs.push_back(fmt::format("_pgincr_seen_key {}", table.key->dest_type));
    defs.push_back("_pgincr_source_deleted_at timestamptz");
    // A reload makes the destination equal the source: nothing is kept any more, and
    // the key's columns may have changed with the source's definition.
    if (reloaded && owner(dst, schema, touched_name(cfg.destination)) == Owner::pgincr)
        dst.exec(fmt::format("DROP TABLE {}", touched));
    bool created = ensure_table(dst, schema, touched_name(cfg.destination),
                                fmt::format("{}", fmt::join(defs, ", ")),
                                "the keys changed in the destination", cfg);
    if (created) {
        bool nnd = dst.server_version() >= 150000;
        dst.exec(fmt::format("CREATE UNIQUE INDEX ON {} ({}){}", touched,
                             fmt::join(keys.unique, ", "), nnd ? " NULLS NOT DISTINCT" : ""));
    }
    if (cfg.conflict == config::Conflict::manual)
        ensure_table(dst, schema, conflicts_name(cfg.destination),
                     "conflict_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, detected_at "
                     "timestamptz NOT NULL DEFAULT pg_catalog.now(), policy text NOT NULL, key "
                     "jsonb NOT NULL, source_row jsonb, dest_row jsonb",
                     "the conflicts to resolve", cfg);

    bool has_trigger =
        dst.exec("SELECT FROM pg_catalog.pg_trigger WHERE tgrelid = pg_catalog.to_regclass($1) "
                 "AND tgname = $2",
                 {target, std::string(trigger_name)}, pg::Expect::rows)
            .rows() > 0;
    if (has_trigger && !created)
        return;
    dst.exec(
        text::fill(sql::conflicts_touch, {{"FUNCTION", function},
                                          {"TOUCHED", touched},
                                          {"KEY", fmt::format("{}", fmt::join(keys.unique, ", "))},
                                          {"OLD_KEY", prefixed(keys.unique, "OLD")},
                                          {"NEW_KEY", prefixed(keys.unique, "NEW")},
                                          {"REPKEY", dst.quote_ident(table.key->name)}}));
    dst.exec(fmt::format("COMMENT ON FUNCTION {}() IS {}", function,
                         dst.quote_literal(fmt::format("{}records the keys of {} written outside "
                                                       "pgincr",
                                                       marker, cfg.destination))));
    if (!has_trigger)
        // AFTER: the key as written; WHEN: pgincr's own writes queue nothing.
        dst.exec(fmt::format("CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH "
                             "ROW WHEN (pg_catalog.current_setting('pgincr.writer', true) IS "
                             "DISTINCT FROM 'on') EXECUTE FUNCTION {}()",
                             trigger_name, target, function));
}

void lock_writers(pg::Connection &dst, const std::string &schema, const config::Table &cfg) {
    // Other sessions' writes wait for this transaction; readers do not. Without it a
    // row changed and committed while the merge runs could be overwritten unseen: the
    // statement's check of the side table reads the snapshot taken at its start.
    dst.exec(fmt::format("LOCK TABLE ONLY {} IN SHARE ROW EXCLUSIVE MODE",
                         dst.qualified(schema, cfg.destination)));
}

std::int64_t check_staged(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
                          const catalog::SourceTable &table, const std::string &staging) {
    lock_writers(dst, schema, cfg);
    auto keys = key_spec(dst, table);
    std::string sql = text::fill(sql::conflicts_staged,
                                 {{"KEY", fmt::format("{}", fmt::join(keys.unique, ", "))},
                                  {"STAGING", staging},
                                  {"REPKEY", dst.quote_ident(table.key->name)},
                                  {"TOUCHED", dst.qualified(schema, touched_name(cfg.destination))},
                                  {"MATCH_TS", merge::key_match(keys, "t", "s")},
                                  {"T_KEY", prefixed(keys.unique, "t")},
                                  {"RECORD", record(dst, schema, cfg, keys, 1)}});
    pg::Params params;
    if (cfg.conflict == config::Conflict::manual)
        params.emplace_back(config::conflict_name(cfg.conflict));
    return run_record(dst, cfg, sql, params);
}

std::string spare_touched(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
                          const catalog::SourceTable &table, const std::string &alias) {
    return fmt::format("NOT EXISTS (SELECT FROM {} AS x WHERE {})",
                       dst.qualified(schema, touched_name(cfg.destination)),
                       merge::key_match(key_spec(dst, table), "x", alias));
}

std::int64_t check_deleted(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
                           const catalog::SourceTable &table, const std::string &match,
                           const pg::Params &params) {
    auto keys = key_spec(dst, table);
    std::string sql = text::fill(sql::conflicts_deleted,
                                 {{"TOUCHED", dst.qualified(schema, touched_name(cfg.destination))},
                                  {"MATCH", match},
                                  {"T_KEY", prefixed(keys.unique, "t")},
                                  {"RECORD", record(dst, schema, cfg, keys, params.size() + 1)}});
    auto all = params;
    if (cfg.conflict == config::Conflict::manual)
        all.emplace_back(config::conflict_name(cfg.conflict));
    return run_record(dst, cfg, sql, all);
}

} // namespace pgincr::conflicts
