#pragma once
// Each managed table's progress, kept in the destination itself (sql/progress_table.sql)
// and written in the same transaction as the rows it describes. sync-state/ stays, as
// the readable, portable copy written after the commit; where the two disagree the
// destination's row wins, because it committed with the rows (see reconcile()).
#include "pg/connection.hpp"
#include "state.hpp"

#include <optional>
#include <string>

namespace pgincr::progress {

constexpr const char *table_name = "_pgincr_tables";

// The row for `destination`, as a TableState without last_sync; nullopt when there is
// none (or no catalog table yet).
std::optional<state::TableState> load(pg::Connection &dst, const std::string &schema,
                                      const std::string &destination);

// Writes `s` (creating the catalog table on first use) in the caller's transaction.
void save(pg::Connection &dst, const std::string &schema, const state::TableState &s);

// What the next sync goes on from: the destination's row when there is one (with the
// file's report and `pgincr reset` flag), else the file. `disagreement` is set to a
// description when both exist and differ.
std::optional<state::TableState> reconcile(const std::optional<state::TableState> &file,
                                           const std::optional<state::TableState> &row,
                                           std::string *disagreement = nullptr);

} // namespace pgincr::progress
