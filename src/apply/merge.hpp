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
    // Conflict policies (apply/conflicts.hpp); both empty for source_wins.
    std::string newest;  // newest_wins: quoted column; a staged row is applied only
                         // when its value is at least the destination row's
    std::string touched; // target_wins, manual: qualified <destination>_pgincr_touched;
                         // staged rows whose key is in it are not applied
    std::vector<bool> unique_not_null; // per unique column; a nullable one is matched
                                       // with IS NOT DISTINCT FROM
};

// incremental-deduped: one row per unique key (the one with the highest replication
// key; with `unique_rows` the only one), INSERT ... ON CONFLICT DO UPDATE, skipping rows that did
// not change so that the re-read window creates no dead tuples. incremental-append: every (unique,
// key) version once; ON CONFLICT DO NOTHING makes re-reads idempotent.
std::string merge_sql(const Spec &spec);

// newest_wins: how many staged rows (after the dedup) the merge will hold back because
// the destination row's column is newer. Run before the merge, in its transaction.
std::string held_back_sql(const Spec &spec);

// `a.k = b.k AND ...` over the unique columns (IS NOT DISTINCT FROM for nullable ones,
// as the NULLS NOT DISTINCT unique index matches them).
std::string key_match(const Spec &spec, const std::string &a, const std::string &b);

// The unique index the merge relies on.
std::vector<std::string> conflict_columns(const Spec &spec);

} // namespace pgincr::merge
