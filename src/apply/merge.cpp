#include "apply/merge.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pgincr::merge {

std::vector<std::string> conflict_columns(const Spec &spec) {
    auto cols = spec.unique;
    if (spec.append && !spec.key.empty() &&
        std::find(cols.begin(), cols.end(), spec.key) == cols.end())
        cols.push_back(spec.key);
    return cols;
}

std::string key_match(const Spec &spec, const std::string &a, const std::string &b) {
    std::vector<std::string> parts;
    for (std::size_t i = 0; i < spec.unique.size(); ++i) {
        bool not_null = i < spec.unique_not_null.size() && spec.unique_not_null[i];
        parts.push_back(fmt::format("{1}.{0} {3} {2}.{0}", spec.unique[i], a, b,
                                    not_null ? "=" : "IS NOT DISTINCT FROM"));
    }
    return fmt::format("{}", fmt::join(parts, " AND "));
}

namespace {

std::string order_of(const Spec &spec, const std::string &on) {
    return spec.key.empty() ? on : fmt::format("{}, {} DESC", on, spec.key);
}

} // namespace

std::string held_back_sql(const Spec &spec) {
    std::string on = fmt::format("{}", fmt::join(conflict_columns(spec), ", "));
    return fmt::format("SELECT pg_catalog.count(*) FROM (SELECT DISTINCT ON ({on}) * FROM "
                       "{staging} ORDER BY {order}) AS s JOIN ONLY {target} AS d ON {match} "
                       "WHERE d.{c} IS NOT NULL AND (s.{c} IS NULL OR s.{c} < d.{c})",
                       fmt::arg("on", on), fmt::arg("staging", spec.staging),
                       fmt::arg("order", order_of(spec, on)), fmt::arg("target", spec.target),
                       fmt::arg("match", key_match(spec, "d", "s")), fmt::arg("c", spec.newest));
}

std::string merge_sql(const Spec &spec) {
    auto conflict = conflict_columns(spec);
    std::string cols = fmt::format("{}", fmt::join(spec.columns, ", "));
    std::string on = fmt::format("{}", fmt::join(conflict, ", "));
    std::string order = order_of(spec, on);

    // target_wins, manual: keys changed in the destination are neither updated nor,
    // when deleted there, inserted again.
    std::string from = spec.staging;
    if (!spec.touched.empty())
        from += fmt::format(" AS s WHERE NOT EXISTS (SELECT FROM {} AS t WHERE {})", spec.touched,
                            key_match(spec, "t", "s"));
    // Two versions of one key in the staged rows would make ON CONFLICT DO UPDATE fail
    // ("cannot affect row a second time"): DISTINCT ON keeps the newest, unless the rows
    // are known to be unique already. Either way they go in in key order: the unique
    // index and the heap are then visited in order, which on a 220,000-row delta into
    // 2,000,000 rows saved more than the sort cost (BENCHMARKS.md).
    std::string sql =
        spec.unique_rows
            ? fmt::format("INSERT INTO {target} AS d ({cols}) SELECT {cols} FROM {from} "
                          "ORDER BY {on} ON CONFLICT ({on}) ",
                          fmt::arg("target", spec.target), fmt::arg("cols", cols),
                          fmt::arg("on", on), fmt::arg("from", from))
            : fmt::format("INSERT INTO {target} AS d ({cols}) SELECT DISTINCT ON ({on}) {cols} "
                          "FROM {from} ORDER BY {order} ON CONFLICT ({on}) ",
                          fmt::arg("target", spec.target), fmt::arg("cols", cols),
                          fmt::arg("on", on), fmt::arg("from", from), fmt::arg("order", order));
    if (spec.append)
        return sql + "DO NOTHING";

    std::vector<std::string> sets, old_vals, new_vals;
    for (const auto &c : spec.columns) {
        if (std::find(conflict.begin(), conflict.end(), c) != conflict.end())
            continue;
        sets.push_back(fmt::format("{0} = EXCLUDED.{0}", c));
    }
    for (const auto &c : spec.columns) {
        old_vals.push_back("d." + c);
        new_vals.push_back("EXCLUDED." + c);
    }
    std::string changed = fmt::format("ROW({})::text IS DISTINCT FROM ROW({})::text",
                                      fmt::join(old_vals, ", "), fmt::join(new_vals, ", "));
    // A row whose replication key moved has changed: the key is compared first, so that
    // only rows re-read at an unchanged key pay for turning both rows into text. The
    // result is the same (the key is one of the columns compared as text).
    if (!spec.key.empty())
        changed = fmt::format("d.{0} IS DISTINCT FROM EXCLUDED.{0} OR {1}", spec.key, changed);
    if (!spec.deleted_at.empty()) {
        // A key deleted in the source and back again is live again.
        sets.push_back(fmt::format("{} = NULL", spec.deleted_at));
        changed = fmt::format("({}) OR d.{} IS NOT NULL", changed, spec.deleted_at);
    }
    // newest_wins: a destination row with no value in the column is older than any.
    if (!spec.newest.empty())
        changed =
            fmt::format("({0}) AND (d.{1} IS NULL OR EXCLUDED.{1} >= d.{1})", changed, spec.newest);
    if (sets.empty())
        return sql + "DO NOTHING";
    // Compared as text: works for every type, json included, which has no '='.
    return sql + fmt::format("DO UPDATE SET {} WHERE {}", fmt::join(sets, ", "), changed);
}

} // namespace pgincr::merge
