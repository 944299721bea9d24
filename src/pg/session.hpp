#pragma once
// The one place that decides how a session is set up, as pgcopydb's pgsql_init and
// pgBackRest's pgClientOpen do. pgincr's own sessions (ConnInfo::pinned) pass every
// setting that changes what a statement means or when it gives up in the startup
// packet, where it outranks ALTER ROLE/DATABASE ... SET and the server's file:
//   client_encoding UTF8 on both sides (the server converts, or fails loudly),
//   DateStyle, IntervalStyle, extra_float_digits (marks are stored as printed),
//   an empty search_path (everything pgincr sends is qualified),
//   statement_timeout and idle_in_transaction_session_timeout 0 (a load may be long,
//   a destination transaction waits while the source streams),
//   lock_timeout bounded (PGINCR_LOCK_TIMEOUT_SECONDS): a swap or a LOCK TABLE never
//   waits forever behind a reader, and says so when it gives up,
//   row_security off on the source: a policy would silently hide rows; off makes
//   such a read fail instead,
//   default_transaction_read_only on the source,
//   pgincr.writer=on on the destination: the conflict policies' trigger skips these
//   sessions' writes.
#include "pg/connection.hpp"

#include <string>
#include <utility>
#include <vector>

namespace pgincr::pg::session {

// libpq keywords and values for PQconnectdbParams, only those that are set, so that
// libpq's environment (PGSSLMODE, PGPASSFILE ...) still fills in the rest.
std::vector<std::pair<std::string, std::string>> connect_params(const ConnInfo &info);

// The `options` startup parameter for `info`.
std::string startup_options(const ConnInfo &info);

// Settings that only some server versions know (idle_session_timeout, 14+), set once
// the version is known: an unknown name in the startup packet would refuse the session.
void finish_setup(Connection &conn);

} // namespace pgincr::pg::session
