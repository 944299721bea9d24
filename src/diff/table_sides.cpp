#include "diff/table_sides.hpp"

#include "source/filter.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace pgincr::sql {
extern const std::string_view key_collations;
}

namespace pgincr::diff {

namespace {

std::string collations(pg::Connection &conn, const std::string &relation,
                       const std::vector<std::string> &key) {
    std::vector<std::optional<std::string>> names(key.begin(), key.end());
    auto res = conn.exec(sql::key_collations, {relation, array_literal(names)}, pg::Expect::rows);
    std::string out;
    for (int i = 0; i < res.rows(); ++i)
        out += fmt::format("{}={};", res.text(i, 0), res.text(i, 1));
    return out;
}

bool is_integer(const std::string &type) {
    return type == "smallint" || type == "integer" || type == "bigint";
}

} // namespace

TableSides table_sides(pg::Connection &src, pg::Connection &dst, const config::Settings &settings,
                       const config::Table &cfg, const catalog::SourceTable &table, Compare compare,
                       const std::optional<std::string> &mark) {
    std::vector<std::string> key = table.unique_cols;
    // An append destination holds every version: its rows are told apart by the
    // replication key too, as its unique index does.
    if (cfg.mode == config::Mode::incremental_append && table.key &&
        std::find(key.begin(), key.end(), table.key->name) == key.end())
        key.push_back(table.key->name);
    if (table.unique_cols.empty())
        throw catalog::TableError(fmt::format(
            "\"{}\".\"{}\" has no primary key and its entry no \"unique_cols\": rows are "
            "compared by key; set \"unique_cols\" to the columns that identify a row",
            table.schema, table.name));
    if (!table.unique_cols_indexed) {
        std::vector<std::string> quoted;
        for (const auto &u : table.unique_cols)
            quoted.push_back(src.quote_ident(u));
        throw catalog::TableError(fmt::format(
            "the source table \"{}\".\"{}\" has no btree index that starts with its unique "
            "columns ({}); the delete check and `pgincr verify` walk that index range by "
            "range. Create one on the source, or set \"unique_cols\" to the columns of an "
            "existing unique index",
            table.schema, table.name, fmt::join(quoted, ", ")));
    }

    TableSides t;
    t.src.conn = &src;
    t.dst.conn = &dst;
    t.src.relation = src.qualified(table.schema, table.name);
    t.dst.relation = dst.qualified(settings.dest_schema, cfg.destination);
    for (const auto &k : key) {
        const auto *c = table.column(k);
        if (!c)
            throw catalog::TableError(fmt::format("unique column \"{}\" does not exist", k));
        t.src.key_cols.push_back(src.quote_ident(k));
        t.dst.key_cols.push_back(dst.quote_ident(k));
        t.src.key_types.push_back(c->source_type);
        t.dst.key_types.push_back(c->dest_type);
    }
    t.options.compare = compare;
    t.options.integer_key = key.size() == 1 && is_integer(t.src.key_types[0]) &&
                            t.src.key_types[0] == t.dst.key_types[0];
    t.options.estimated_rows = table.estimated_rows;
    t.options.hash_buckets =
        collations(src, t.src.relation, key) != collations(dst, t.dst.relation, key);
    if (compare == Compare::rows) {
        for (const auto *c : table.copied_columns()) {
            // As the destination types it: the same value then prints the same text.
            t.src.row_cols.push_back(
                c->mapped() ? fmt::format("%A%.{}::{}", src.quote_ident(c->name), c->dest_type)
                            : "%A%." + src.quote_ident(c->name));
            t.dst.row_cols.push_back("%A%." + dst.quote_ident(c->name));
        }
        if (mark && table.key && cfg.mode != config::Mode::full_refresh) {
            t.src.in_flight = fmt::format("%A%.{} >= %MARK%::{}", src.quote_ident(table.key->name),
                                          table.key->source_type);
            t.src.mark = mark;
        }
    }
    if (cfg.filter)
        t.src.where = filter::for_copy(src, t.src.relation, *cfg.filter);
    if (cfg.deletes == config::Deletes::soft)
        t.dst.where = dst.quote_ident(deleted_at_column) + " IS NULL";
    return t;
}

} // namespace pgincr::diff
