#pragma once
// How far a table's destination is behind its source, read live on the source: the
// newest key minus the saved mark, and the rows the next sync reads. `pgincr status`
// shows it and the lag alerts (alerts/lag_alert.hpp) judge by it, so both say the same.
#include "config.hpp"
#include "pg/connection.hpp"
#include "state.hpp"

#include <cstdint>
#include <optional>

namespace pgincr::lag {

struct Lag {
    // The newest key at or after the mark minus the mark, for time keys (0 when no row
    // is newer); none without a mark or for integer keys.
    std::optional<double> seconds;
    std::optional<std::int64_t> rows_waiting; // rows at or after the mark
};

// Autocommit reads on `src`, through the key's index: only the rows at or after the
// mark that pass the entry's filter. Nothing for cdc entries and entries without a
// mark (their lag is the stream's: cdc_sync reports it). Without `count_rows` only the
// newest key is read (one index probe), and rows_waiting stays unknown: a mark held back
// for hours can have many rows after it. Throws pg::PgError.
Lag measure(pg::Connection &src, const config::Settings &settings, const config::Table &cfg,
            const state::TableState &saved, bool count_rows = true);

} // namespace pgincr::lag
