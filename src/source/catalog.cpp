#include "source/catalog.hpp"

#include "util/hash.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pgincr::sql {
extern const std::string_view source_table;
extern const std::string_view source_columns;
extern const std::string_view source_indexes;
} // namespace pgincr::sql

namespace pgincr::catalog {

namespace {

KeyKind key_kind_of(std::int64_t type_oid) {
    switch (type_oid) {
    case 1184:
        return KeyKind::timestamptz;
    case 1114:
        return KeyKind::timestamp;
    case 1082:
        return KeyKind::date;
    case 20:
    case 21:
    case 23:
        return KeyKind::integer;
    default:
        return KeyKind::none;
    }
}

} // namespace

std::vector<std::string> parse_text_array(std::string_view s) {
    std::vector<std::string> out;
    if (s.size() < 2)
        return out;
    s = s.substr(1, s.size() - 2);
    std::string cur;
    bool quoted = false, any = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (quoted) {
            if (c == '\\' && i + 1 < s.size())
                cur += s[++i];
            else if (c == '"')
                quoted = false;
            else
                cur += c;
        } else if (c == '"') {
            quoted = true;
            any = true;
        } else if (c == ',') {
            out.push_back(cur);
            cur.clear();
            any = false;
        } else {
            cur += c;
            any = true;
        }
    }
    if (any || !cur.empty() || !out.empty())
        out.push_back(cur);
    return out;
}

const Column *SourceTable::column(const std::string &col) const {
    for (const auto &c : columns)
        if (c.name == col)
            return &c;
    return nullptr;
}

std::vector<const Column *> SourceTable::copied_columns() const {
    std::vector<const Column *> out;
    for (const auto &c : columns)
        if (!c.generated)
            out.push_back(&c);
    return out;
}

std::string fingerprint(const std::vector<Column> &columns,
                        const std::vector<std::string> &unique_cols) {
    std::string text;
    for (const auto &c : columns)
        text += fmt::format("{}\t{}\t{}\t{}\n", c.name, c.source_type, c.not_null ? "not null" : "",
                            c.generated.value_or(""));
    text += "unique";
    for (const auto &u : unique_cols)
        text += "\t" + u;
    return hash::sha256_hex(text);
}

SourceTable describe_source(pg::Connection &src, const std::string &schema,
                            const config::Table &cfg) {
    SourceTable t;
    t.schema = schema;
    t.name = cfg.name;
    auto rel = src.exec(sql::source_table, {schema, cfg.name}, pg::Expect::rows);
    if (rel.rows() == 0) {
        t.errors.push_back(
            fmt::format("source table \"{}\".\"{}\" does not exist (tables-config.json entry {})",
                        schema, cfg.name, cfg.entry));
        return t;
    }
    t.oid = rel.integer(0, 0);
    std::string relkind(rel.text(0, 1));
    t.estimated_rows = rel.integer(0, 2);
    t.can_write = rel.boolean(0, 3);
    if (!rel.boolean(0, 4))
        t.errors.push_back(fmt::format("the source role has no SELECT privilege on \"{}\".\"{}\"",
                                       schema, cfg.name));
    t.primary_key = parse_text_array(rel.text(0, 5));
    if (relkind != "r") {
        t.errors.push_back(fmt::format("\"{}\".\"{}\" is not a plain table (relkind '{}'); views, "
                                       "partitioned and foreign tables are not supported",
                                       schema, cfg.name, relkind));
        return t;
    }

    auto cols = src.exec(sql::source_columns, {std::to_string(t.oid)}, pg::Expect::rows);
    std::vector<std::int64_t> type_oids;
    std::vector<std::int64_t> attnums;
    for (int i = 0; i < cols.rows(); ++i) {
        Column c;
        c.name = cols.text(i, 0);
        c.source_type = cols.text(i, 1);
        c.dest_type = cols.text(i, 2);
        c.not_null = cols.boolean(i, 3);
        c.generated = cols.optional(i, 4);
        type_oids.push_back(cols.integer(i, 5));
        attnums.push_back(cols.integer(i, 6));
        t.columns.push_back(std::move(c));
    }

    std::int64_t key_attnum = 0;
    if (!cfg.replication_key.empty()) {
        auto it = std::find_if(t.columns.begin(), t.columns.end(),
                               [&](const Column &c) { return c.name == cfg.replication_key; });
        if (it == t.columns.end()) {
            t.errors.push_back(fmt::format("replication_key column \"{}\" does not exist in \"{}\"",
                                           cfg.replication_key, cfg.name));
        } else {
            auto idx = static_cast<std::size_t>(it - t.columns.begin());
            t.key = *it;
            t.key_kind = key_kind_of(type_oids[idx]);
            key_attnum = attnums[idx];
            if (t.key_kind == KeyKind::none)
                t.errors.push_back(fmt::format(
                    "replication_key \"{}\" has type {}; supported types are timestamp, "
                    "timestamptz, date, smallint, integer and bigint",
                    it->name, it->source_type));
            if (it->generated)
                t.warnings.push_back(
                    fmt::format("replication_key \"{}\" is a generated column", it->name));
        }
    }

    t.unique_cols = cfg.unique_cols.empty() ? t.primary_key : cfg.unique_cols;
    if (t.unique_cols.empty() && cfg.mode != config::Mode::full_refresh)
        t.errors.push_back(fmt::format("\"{}\" has no primary key and tables-config.json entry {} "
                                       "has no unique_cols; list the columns that identify a row",
                                       cfg.name, cfg.entry));
    for (const auto &u : t.unique_cols)
        if (!t.column(u))
            t.errors.push_back(
                fmt::format("unique_cols column \"{}\" does not exist in \"{}\"", u, cfg.name));

    if (cfg.conflict == config::Conflict::newest_wins && !cfg.conflict_column.empty()) {
        const auto *c = t.column(cfg.conflict_column);
        if (!c || c->generated)
            t.errors.push_back(fmt::format(
                "conflict_column \"{}\" is not a column of \"{}\" that pgincr copies (a "
                "generated column is computed by the destination); tables-config.json entry {}",
                cfg.conflict_column, cfg.name, cfg.entry));
    }

    std::vector<std::string> conflict = t.unique_cols;
    if (cfg.mode == config::Mode::incremental_append && t.key &&
        std::find(conflict.begin(), conflict.end(), t.key->name) == conflict.end())
        conflict.push_back(t.key->name);
    auto idx = src.exec(sql::source_indexes, {std::to_string(t.oid)}, pg::Expect::rows);
    for (int i = 0; i < idx.rows(); ++i) {
        IndexDef d;
        d.method = idx.text(i, 0);
        d.unique = idx.boolean(i, 1);
        d.key_exprs = parse_text_array(idx.text(i, 2));
        d.predicate = idx.optional(i, 3);
        if (key_attnum != 0 && idx.integer(i, 4) == key_attnum && !d.predicate)
            t.key_indexed = true;
        // The destination's own unique index already covers this one ("indexes": "all"
        // would otherwise build a second, plain index on the same columns, which every
        // merge then has to maintain).
        auto key_columns = parse_text_array(idx.text(i, 5));
        if (d.method == "btree" && !d.predicate && key_columns.size() == d.key_exprs.size() &&
            key_columns.size() >= t.unique_cols.size() && !t.unique_cols.empty() &&
            std::equal(t.unique_cols.begin(), t.unique_cols.end(), key_columns.begin()))
            t.unique_cols_indexed = true;
        if (d.unique && !d.predicate && idx.boolean(i, 6) && !key_columns.empty() &&
            key_columns.size() == d.key_exprs.size() &&
            std::all_of(key_columns.begin(), key_columns.end(), [&](const std::string &k) {
                const auto *c = t.column(k);
                return c && c->not_null && !c->mapped() &&
                       std::find(t.unique_cols.begin(), t.unique_cols.end(), k) !=
                           t.unique_cols.end();
            }))
            t.unique_rows = true;
        if (d.unique && !d.predicate && key_columns.size() == d.key_exprs.size() &&
            key_columns == conflict)
            continue;
        t.indexes.push_back(std::move(d));
    }

    if (cfg.deletes != config::Deletes::ignore && cfg.mode == config::Mode::incremental_deduped &&
        t.errors.empty()) {
        if (!t.unique_cols_indexed)
            t.errors.push_back(fmt::format(
                "\"deletes\" needs a btree index on the source that starts with the unique "
                "columns ({}), in that order: the delete check walks it range by range. Create "
                "one, or set \"unique_cols\" to the columns of an existing unique index",
                fmt::join(t.unique_cols, ", ")));
        for (const auto &u : t.unique_cols)
            if (const auto *c = t.column(u); c && !c->not_null)
                t.warnings.push_back(fmt::format("unique column \"{}\" is nullable: rows with a "
                                                 "NULL there are never taken for deleted",
                                                 u));
    }

    t.fingerprint = fingerprint(t.columns, t.unique_cols);
    return t;
}

void require_syncable(const SourceTable &table) {
    if (table.errors.empty())
        return;
    std::string text = table.errors.front();
    for (std::size_t i = 1; i < table.errors.size(); ++i)
        text += "; " + table.errors[i];
    throw TableError(text);
}

std::optional<std::string> dest_signature(pg::Connection &dst, const std::string &schema,
                                          const std::string &table) {
    auto res = dst.exec(
        "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname) OPERATOR(pg_catalog.||) "
        "' ' OPERATOR(pg_catalog.||) pg_catalog.format_type(a.atttypid, a.atttypmod), ', ' "
        "ORDER BY a.attnum) "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT "
        "a.attisdropped WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'",
        {schema, table}, pg::Expect::value);
    return res.optional(0, 0);
}

std::string column_list(const pg::Connection &conn, const SourceTable &table) {
    std::string out;
    for (const auto *c : table.copied_columns())
        out += (out.empty() ? "" : ", ") + conn.quote_ident(c->name);
    return out;
}

std::string select_list(const pg::Connection &conn, const SourceTable &table) {
    std::string out;
    for (const auto *c : table.copied_columns()) {
        std::string q = conn.quote_ident(c->name);
        out += out.empty() ? "" : ", ";
        out += c->mapped() ? fmt::format("{0}::{1} AS {0}", q, c->dest_type) : q;
    }
    return out;
}

bool relation_exists(pg::Connection &conn, const std::string &schema, const std::string &name) {
    auto res = conn.exec("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN "
                         "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "
                         "$1 AND c.relname = $2)",
                         {schema, name}, pg::Expect::value);
    return res.boolean(0, 0);
}

} // namespace pgincr::catalog
