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

std::string merge_sql(const Spec &spec) {
    auto conflict = conflict_columns(spec);
    std::string cols = fmt::format("{}", fmt::join(spec.columns, ", "));
    std::string on = fmt::format("{}", fmt::join(conflict, ", "));
    std::string order = on;
    if (!spec.key.empty())
        order += fmt::format(", {} DESC", spec.key);

    // Two versions of one key in the staged rows would make ON CONFLICT DO UPDATE fail
    // ("cannot affect row a second time"): DISTINCT ON keeps the newest, unless the rows
    // are known to be unique already. Either way they go in in key order: the unique
    // index and the heap are then visited in order, which on a 220,000-row delta into
    // 2,000,000 rows saved more than the sort cost (BENCHMARKS.md).
    std::string sql =
        spec.unique_rows
            ? fmt::format("INSERT INTO {target} AS d ({cols}) SELECT {cols} FROM {staging} "
                          "ORDER BY {on} ON CONFLICT ({on}) ",
                          fmt::arg("target", spec.target), fmt::arg("cols", cols),
                          fmt::arg("on", on), fmt::arg("staging", spec.staging))
            : fmt::format("INSERT INTO {target} AS d ({cols}) SELECT DISTINCT ON ({on}) {cols} "
                          "FROM {staging} ORDER BY {order} ON CONFLICT ({on}) ",
                          fmt::arg("target", spec.target), fmt::arg("cols", cols),
                          fmt::arg("on", on), fmt::arg("staging", spec.staging),
                          fmt::arg("order", order));
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
    if (sets.empty())
        return sql + "DO NOTHING";
    // Compared as text: works for every type, json included, which has no '='.
    return sql + fmt::format("DO UPDATE SET {} WHERE {}", fmt::join(sets, ", "), changed);
}

} // namespace pgincr::merge
