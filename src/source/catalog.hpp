#pragma once
// Introspection of the source table (and of what pgincr built in the destination):
// columns and their destination types, the replication key, the unique columns, and
// the fingerprint whose change triggers a reset.
#include "config.hpp"
#include "pg/connection.hpp"

#include <optional>
#include <string>
#include <vector>

namespace pgincr::catalog {

enum class KeyKind { none, timestamptz, timestamp, date, integer };

struct Column {
    std::string name;
    std::string source_type; // format_type() on the source
    std::string dest_type;   // what the destination column is created as
    bool not_null = false;
    std::optional<std::string> generated; // STORED generation expression
    bool mapped() const { return source_type != dest_type; }
};

struct IndexDef {
    std::string method; // btree, gin ...
    bool unique = false;
    std::vector<std::string> key_exprs;
    std::optional<std::string> predicate;
};

struct SourceTable {
    std::string schema;
    std::string name;
    std::int64_t oid = 0;
    std::int64_t estimated_rows = 0;
    bool can_write = false;
    std::vector<Column> columns;
    std::vector<std::string> primary_key;
    std::vector<std::string> unique_cols; // from the config, else the primary key
    std::optional<Column> key;            // the replication key column
    KeyKind key_kind = KeyKind::none;
    bool key_indexed = false;
    // A btree index leads with the unique columns, in their order: the delete check and
    // `verify` walk it range by range (diff/range_diff.hpp).
    bool unique_cols_indexed = false;
    // One read of the table holds each unique_cols value at most once: a valid unique
    // index without predicate or expressions covers a subset of them, each NOT NULL and
    // of a type the destination keeps (so that its equality is no coarser there).
    bool unique_rows = false;
    std::vector<IndexDef> indexes;
    std::string fingerprint;

    // Blocking problems (the table cannot sync) and advice; `check` prints both.
    std::vector<std::string> errors;
    std::vector<std::string> warnings;

    const Column *column(const std::string &name) const;
    // Columns that pgincr writes (generated columns are computed by the destination).
    std::vector<const Column *> copied_columns() const;
    bool is_time_key() const {
        return key_kind == KeyKind::timestamptz || key_kind == KeyKind::timestamp ||
               key_kind == KeyKind::date;
    }
};

// Reads the table's definition. A missing table, key or unique column is recorded in
// `errors` (not thrown), so that `check` can report every problem at once.
SourceTable describe_source(pg::Connection &src, const std::string &schema,
                            const config::Table &table);

// Throws TableError listing `errors` when the table cannot sync.
void require_syncable(const SourceTable &table);

// The fingerprint of a column list plus unique columns (pure; unit-tested).
std::string fingerprint(const std::vector<Column> &columns,
                        const std::vector<std::string> &unique_cols);

// "name type, name type ..." of the destination table as it is now, or nullopt when
// it does not exist. Saved right after a load and compared on every sync, so that a
// column changed in the destination by hand triggers a reload.
std::optional<std::string> dest_signature(pg::Connection &dst, const std::string &schema,
                                          const std::string &table);

// "a", "b" ... of the columns pgincr writes, quoted for `conn`.
std::string column_list(const pg::Connection &conn, const SourceTable &table);
// The same columns as a SELECT list on the source: mapped columns are cast to their
// destination type so that binary COPY formats match on both sides.
std::string select_list(const pg::Connection &conn, const SourceTable &table);

bool relation_exists(pg::Connection &conn, const std::string &schema, const std::string &name);

// A text[] or name[] value as PostgreSQL prints it, {a,"b c"}, as its elements.
std::vector<std::string> parse_text_array(std::string_view s);

// A table-level problem: the table fails, the run goes on.
class TableError : public Error {
  public:
    using Error::Error;
};

} // namespace pgincr::catalog
