#pragma once
// SQL that moves staged rows into the destination table. Built from identifiers that
// the caller already quoted with libpq, so it is pure and unit-tested.
#include <string>
#include <vector>

namespace pgincr::merge {

struct Spec {
    std::string target;               // "schema"."table"
    std::string staging;              // "schema"."table_stg"
    std::vector<std::string> columns; // quoted, the columns pgincr writes
    std::vector<std::string> unique;  // quoted unique columns
    std::string key;                  // quoted replication key ("" for none)
    bool append = false;              // incremental-append: keep every version
    std::string deleted_at;           // quoted soft-delete column, cleared when a key
                                      // comes back ("" for none)
    // The staged rows hold each conflict key at most once (one read of a source table
    // whose unique index guarantees it): inserted as they are (in key order), without
    // the dedup.
    bool unique_rows = false;
};

// incremental-deduped: one row per unique key (the one with the highest replication
// key; with `unique_rows` the only one), INSERT ... ON CONFLICT DO UPDATE, skipping rows that did
// not change so that the re-read window creates no dead tuples. incremental-append: every (unique,
// key) version once; ON CONFLICT DO NOTHING makes re-reads idempotent.
std::string merge_sql(const Spec &spec);

// The unique index the merge relies on.
std::vector<std::string> conflict_columns(const Spec &spec);

} // namespace pgincr::merge
