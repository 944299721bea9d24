#pragma once
// Which destination tables belong to pgincr. A warehouse schema is shared with its
// users: pgincr replaces, truncates or drops a table (or its <table>_stg) only when it
// manages it, and otherwise fails that table with an error that names it and says how
// to hand it over (`pgincr sync --replace TABLE`).
#include "config.hpp"
#include "pg/connection.hpp"

#include <optional>
#include <string>

namespace pgincr::ownership {

// A table is managed when pgincr's catalog in the destination (dest/progress) has a
// row for it: the row is written with the swap that created the table.

// Evidence pgincr has, besides the registry, that it may replace the table.
struct Claim {
    bool has_state = false; // sync-state/<destination>.json exists
    bool legacy = false;    // the old tool's <table>.txt cursor: its tables are taken over
    bool replace = false;   // `pgincr sync --replace <destination>`
};

// The error for a full load that would replace a table pgincr does not manage, or
// nullopt when the load may go ahead. Reads the destination only when `claim` alone
// does not settle it.
std::optional<std::string> conflict(pg::Connection &dst, const std::string &schema,
                                    const config::Table &cfg, const Claim &claim);

} // namespace pgincr::ownership
