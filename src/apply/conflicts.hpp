#pragma once
// Conflict policies (an entry's "conflict"; README.md, "Conflicts"): what happens when
// a row pgincr is about to write was also changed in the destination.
//   source_wins: the source row overwrites it (the merge as it always was).
//   newest_wins: the merge applies a row only when its replication_key (or
//     "conflict_column") is at least the destination row's (apply/merge.hpp).
//   target_wins: rows changed in the destination since pgincr last wrote them are
//     left as they are, and deletes skip them.
//   manual: as target_wins, and each conflict is written to <destination>_conflicts.
// target_wins and manual need to tell pgincr's writes from others': a trigger on the
// destination table records the keys that sessions other than pgincr's (which set
// pgincr.writer=on at startup) insert, update or delete, in a side table,
// <destination>_pgincr_touched. A side table rather than a column: the destination
// table keeps the source's shape (its signature, verify, the user's SELECT *), and a
// row deleted in the destination is recorded too. Everything here is pgincr's own,
// marked by a comment, created only when the policy asks for it, and removed (the
// conflicts table aside, which holds a person's work) when it no longer does.
#include "config.hpp"
#include "pg/connection.hpp"
#include "source/catalog.hpp"

#include <cstdint>
#include <string>

namespace pgincr::conflicts {

// target_wins or manual: keys changed in the destination are kept.
bool keeps_destination_changes(const config::Table &cfg);

std::string touched_name(const std::string &destination);   // <destination>_pgincr_touched
std::string conflicts_name(const std::string &destination); // <destination>_conflicts

// In the caller's destination transaction, after a load's swap (`reloaded`) or before
// an incremental merge: creates what the entry's policy needs that is missing (the
// side table, the trigger and its function, for manual the conflicts table), or drops
// pgincr's trigger, function and side table when the policy no longer needs them. A
// reload makes the destination equal the source: its recorded keys are cleared. An
// existing table of those names that pgincr did not create fails the table
// (catalog::TableError), untouched.
void prepare(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
             const catalog::SourceTable &table, bool reloaded);

// target_wins, manual: other sessions' writes to the destination table wait until the
// caller's transaction ends (lock_timeout bounds pgincr's own wait for the lock).
void lock_writers(pg::Connection &dst, const std::string &schema, const config::Table &cfg);

// target_wins, manual, before the merge: locks the destination table against other
// writers until the commit (so that no write slips between the check and the merge),
// then counts the staged rows that meet a key changed in the destination with a newer
// source version, and for manual records them. Returns the count.
std::int64_t check_staged(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
                          const catalog::SourceTable &table, const std::string &staging);

// target_wins, manual, in the delete check: the predicate (on alias `alias`) that
// spares keys changed in the destination from a delete.
std::string spare_touched(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
                          const catalog::SourceTable &table, const std::string &alias);

// target_wins, manual, in the delete check: of the keys deleted in the source
// (`match`: a predicate on alias t over `params`), those changed in the destination
// are conflicts, each counted (and for manual recorded) once. Returns the count.
std::int64_t check_deleted(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
                           const catalog::SourceTable &table, const std::string &match,
                           const pg::Params &params);

} // namespace pgincr::conflicts
