#include "modes/verify.hpp"

#include "apply/apply.hpp"
#include "dest/ddl.hpp"
#include "diff/table_sides.hpp"
#include "lock.hpp"
#include "pg/snapshot.hpp"
#include "source/catalog.hpp"
#include "util/fault.hpp"
#include "util/progress.hpp"
#include "util/time.hpp"

#include <chrono>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pgincr::verify {

void Kind::add(const std::vector<diff::Key> &keys) {
    count += static_cast<std::int64_t>(keys.size());
    for (const auto &k : keys)
        if (samples.size() < sample_keys)
            samples.push_back(diff::describe(k));
}

namespace {

// What the rows an entry keeps on purpose are: "" when it keeps none.
std::string expected_as(const config::Table &cfg) {
    if (cfg.mode == config::Mode::incremental_append)
        return "earlier versions";
    if (cfg.mode == config::Mode::incremental_deduped && cfg.deletes != config::Deletes::hard)
        return "deleted in the source";
    return "";
}

// Whether a live row only in the destination is one of them. A soft entry keeps its
// deleted rows marked; a live one the source lacks is a difference.
bool extras_expected(const config::Table &cfg) {
    return cfg.mode == config::Mode::incremental_append ||
           (cfg.mode == config::Mode::incremental_deduped &&
            cfg.deletes == config::Deletes::ignore);
}

struct Pass {
    pg::Connection &src;
    pg::Connection &dst;
    const config::Settings &settings;
    const config::Table &cfg;
    const state::TableState &saved;
    bool repair;
    const std::function<void()> &before_commit;
};

// Copies the missing and changed rows again (staging, merge) and removes the extra
// ones where "deletes" allows, in the comparison's destination transaction.
std::int64_t repair_batch(const Pass &p, const catalog::SourceTable &table,
                          const diff::TableSides &sides, const diff::Found &found) {
    std::int64_t done = 0;
    std::string target = sides.dst.relation;
    if (!found.changed.empty()) {
        // An append destination's merge never updates a version it has; a deduped one
        // would, but one path for both is simpler to trust.
        pg::Params params;
        auto match = diff::key_in(sides.dst, "t", found.changed, params);
        p.dst.exec(fmt::format("DELETE FROM ONLY {} AS t WHERE {}", target, match), params,
                   pg::Expect::command);
    }
    std::vector<diff::Key> recopy = found.missing;
    recopy.insert(recopy.end(), found.changed.begin(), found.changed.end());
    if (!recopy.empty()) {
        std::string staging =
            p.dst.qualified(p.settings.dest_schema, ddl::staging_name(p.cfg.destination));
        p.dst.exec(fmt::format("TRUNCATE {}", staging));
        Progress progress(p.cfg.destination, "repairing", 0);
        done += apply::copy_rows(p.src, p.dst, table,
                                 " WHERE " + diff::key_in_for_copy(sides.src, recopy), staging,
                                 progress);
        progress.finish();
        apply::merge_staged(p.dst, target, staging, p.cfg, table, p.settings.dest_schema);
    }
    if (!found.extra.empty() && !extras_expected(p.cfg)) {
        pg::Params params;
        auto match = diff::key_in(sides.dst, "t", found.extra, params);
        std::string sql =
            p.cfg.deletes == config::Deletes::soft
                ? fmt::format("UPDATE ONLY {0} AS t SET {1} = pg_catalog.now() WHERE {2} AND "
                              "t.{1} IS NULL",
                              target, p.dst.quote_ident(diff::deleted_at_column), match)
                : fmt::format("DELETE FROM ONLY {} AS t WHERE {}", target, match);
        done += p.dst.exec(sql, params, pg::Expect::command).affected_rows();
    }
    return done;
}

// Rows with a NULL in a unique column fall in no range of the key (a row comparison
// with NULL is never true), so they are compared apart, as one group: count and
// checksum on both sides. A difference there cannot be told row by row.
void compare_null_keys(const Pass &p, const catalog::SourceTable &table,
                       const diff::TableSides &sides, Report &r) {
    std::vector<std::string> src_test, dst_test;
    for (std::size_t i = 0; i < table.unique_cols.size(); ++i) {
        const auto *c = table.column(table.unique_cols[i]);
        if (c && c->not_null)
            continue;
        src_test.push_back("s." + sides.src.key_cols[i] + " IS NULL");
        dst_test.push_back("s." + sides.dst.key_cols[i] + " IS NULL");
    }
    if (src_test.empty())
        return;
    auto sql_for = [](const diff::Side &side, const std::vector<std::string> &tests) {
        std::vector<std::string> row;
        for (auto c : side.row_cols) {
            for (auto at = c.find("%A%"); at != std::string::npos; at = c.find("%A%"))
                c.replace(at, 3, "s");
            row.push_back(c);
        }
        return fmt::format("SELECT pg_catalog.count(*), coalesce(pg_catalog.sum("
                           "pg_catalog.hashtext(ROW({})::pg_catalog.text)), 0) FROM ONLY {} AS s "
                           "WHERE ({}){}",
                           fmt::join(row, ", "), side.relation, fmt::join(tests, " OR "),
                           side.where.empty() ? "" : " AND (" + side.where + ")");
    };
    auto [a, b] = pg::exec_both(p.src, sql_for(sides.src, src_test), {}, p.dst,
                                sql_for(sides.dst, dst_test), {}, pg::Expect::one_row);
    r.null_key_rows_source = a.integer(0, 0);
    r.null_key_rows_dest = b.integer(0, 0);
    r.null_keys_differ = a.integer(0, 0) != b.integer(0, 0) || a.integer(0, 1) != b.integer(0, 1);
    r.source_rows += r.null_key_rows_source;
    r.dest_rows += r.null_key_rows_dest;
}

Report compare_once(const Pass &p) {
    Report r;
    r.name = p.cfg.name;
    r.destination = p.cfg.destination;
    r.expected_as = expected_as(p.cfg);
    std::string source_rel = p.src.qualified(p.settings.source_schema, p.cfg.name);
    pg::Snapshot snapshot(p.src);
    try {
        snapshot.lock(source_rel);
    } catch (const pg::PgError &e) {
        if (e.sqlstate() != "42P01")
            throw;
        throw catalog::TableError(fmt::format("source table \"{}\".\"{}\" does not exist",
                                              p.settings.source_schema, p.cfg.name));
    }
    auto table = catalog::describe_source(p.src, p.settings.source_schema, p.cfg);
    catalog::require_syncable(table);
    if (!catalog::relation_exists(p.dst, p.settings.dest_schema, p.cfg.destination))
        throw catalog::TableError(fmt::format("the destination table \"{}\".\"{}\" does not "
                                              "exist; `pgincr sync` creates it",
                                              p.settings.dest_schema, p.cfg.destination));
    if (p.repair && !catalog::relation_exists(p.dst, p.settings.dest_schema,
                                              ddl::staging_name(p.cfg.destination)))
        throw catalog::TableError(fmt::format("the staging table \"{}\" is missing; run `pgincr "
                                              "sync` first, which reloads the table",
                                              ddl::staging_name(p.cfg.destination)));
    // The policy keeps some destination changes on purpose; a repair would have to undo
    // them (and target_wins's merge would skip the keys it just deleted).
    if (p.repair && p.cfg.conflict != config::Conflict::source_wins)
        throw catalog::TableError(fmt::format(
            "\"conflict\": \"{}\" keeps destination changes on purpose, so --repair does not "
            "overwrite them (`pgincr verify` without --repair counts them as differences); "
            "`pgincr reset {}` reloads the table equal to the source",
            config::conflict_name(p.cfg.conflict), p.cfg.destination));
    pg::Transaction tx(p.dst, p.repair ? "BEGIN ISOLATION LEVEL REPEATABLE READ"
                                       : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    std::optional<std::string> mark;
    if (p.cfg.mode != config::Mode::full_refresh)
        mark = p.saved.watermark;
    auto sides =
        diff::table_sides(p.src, p.dst, p.settings, p.cfg, table, diff::Compare::rows, mark);
    auto totals = diff::compare(sides.src, sides.dst, sides.options, {}, [&](const diff::Found &f) {
        r.missing.add(f.missing);
        r.changed.add(f.changed);
        r.in_flight.add(f.in_flight);
        (extras_expected(p.cfg) ? r.expected : r.extra).add(f.extra);
        if (p.repair)
            r.repaired += repair_batch(p, table, sides, f);
    });
    r.source_rows = totals.source_rows;
    r.dest_rows = totals.dest_rows;
    compare_null_keys(p, table, sides, r);
    if (p.cfg.deletes == config::Deletes::soft) {
        // Marked rows are left out of the comparison (only live rows are compared).
        std::string col = p.dst.quote_ident(diff::deleted_at_column);
        std::string marked_test = fmt::format("t.{} IS NOT NULL", col);
        auto count = p.dst.exec(fmt::format("SELECT pg_catalog.count(*) FROM ONLY {} AS t WHERE {}",
                                            sides.dst.relation, marked_test),
                                pg::Expect::value);
        std::vector<std::string> key_text;
        for (const auto &k : sides.dst.key_cols)
            key_text.push_back("t." + k + "::pg_catalog.text");
        auto some = p.dst.exec(fmt::format("SELECT {} FROM ONLY {} AS t WHERE {} LIMIT {}",
                                           fmt::join(key_text, ", "), sides.dst.relation,
                                           marked_test, sample_keys),
                               pg::Expect::rows);
        r.expected.count += count.integer(0, 0);
        for (int i = 0; i < some.rows() && r.expected.samples.size() < sample_keys; ++i) {
            diff::Key k;
            for (int c = 0; c < some.columns(); ++c)
                k.push_back(some.optional(i, c));
            r.expected.samples.push_back(diff::describe(k));
        }
        r.dest_rows += count.integer(0, 0);
    }
    if (p.repair) {
        fault::point("repair-before-commit");
        if (p.before_commit)
            p.before_commit();
        tx.commit();
    }
    snapshot.close();
    r.compared = true;
    return r;
}

} // namespace

Report run(pg::Connection &src, pg::Connection &dst, const config::Settings &settings,
           const config::Table &cfg, const std::optional<state::TableState> &saved, bool repair,
           const std::function<void()> &before_commit) {
    auto started = std::chrono::steady_clock::now();
    Report r;
    r.name = cfg.name;
    r.destination = cfg.destination;
    try {
        if (!saved)
            throw catalog::TableError("never synced: there is no progress row in the "
                                      "destination and no sync-state file; run `pgincr sync` "
                                      "first");
        r = compare_once(Pass{src, dst, settings, cfg, *saved, repair, before_commit});
        if (repair && r.repaired > 0) {
            auto repaired = r.repaired;
            r = compare_once(Pass{src, dst, settings, cfg, *saved, false, before_commit});
            r.repaired = repaired;
        }
    } catch (const lock::LockLostError &) {
        throw;
    } catch (const std::exception &e) {
        r.compared = false;
        r.error = e.what();
    }
    r.duration_ms = timeutil::ms_between(started, std::chrono::steady_clock::now());
    return r;
}

} // namespace pgincr::verify
