#pragma once
// One table's sync: decide what to do (initial load, reset, incremental), do it, and
// save the state after the destination committed.
#include "config.hpp"
#include "lock.hpp"
#include "pg/connection.hpp"
#include "source/catalog.hpp"
#include "state.hpp"
#include "summary.hpp"

#include <functional>
#include <optional>
#include <string>

namespace pgincr::watermark {
struct Horizon;
class HorizonReader;
}

namespace pgincr::table_sync {

struct Plan {
    SyncMode mode = SyncMode::initial;
    std::string reason;                     // why, for the log and `check`
    std::optional<std::string> legacy_mark; // the old tool's cursor, to take over
};

// Pure decision from the source's definition, the saved state and what exists in
// the destination. `dest_sig` is the destination table's current signature (nullopt:
// missing); `staging_exists` whether <table>_stg exists.
Plan decide(const config::Table &cfg, const catalog::SourceTable &table,
            const std::optional<state::TableState> &saved,
            const std::optional<std::string> &dest_sig, bool staging_exists,
            const std::optional<std::string> &legacy_mark);

// The state a sync goes on from: the destination's progress row, which committed
// with the rows, else sync-state/ (dest/progress.hpp). `disagreement` says how the two
// differ, when they do.
std::optional<state::TableState> load_saved(pg::Connection &dst, const config::Settings &settings,
                                            const config::Table &cfg, const state::Store &store,
                                            std::string *disagreement = nullptr);

// incremental-replication's cursor for this entry. The old tool named its cursor and
// its destination table after the source table, so only an entry whose destination is
// the source's name takes it over: another entry reading the same source must not adopt
// a table with that cursor's mark.
std::optional<std::string> legacy_cursor(const state::Store &store, const config::Table &cfg);

// Reads what decide() needs from the destination and the state store.
Plan plan(pg::Connection &dst, const config::Settings &settings, const config::Table &cfg,
          const catalog::SourceTable &table, const state::Store &store,
          const std::optional<state::TableState> &saved);

// The sessions one table's sync works with.
struct Sessions {
    pg::Connection &src;
    pg::Connection &dst;
    pg::Connection *primary = nullptr; // the source's primary, when the source is a standby
    lock::RunLock *lock = nullptr;     // checked during long copies and before each commit
    // Told every late-commit horizon read (once per table's snapshot): the run warns
    // about the role's or the standby's view from the first one, without a read of its own.
    std::function<void(const watermark::Horizon &)> on_horizon;
    // The run's horizons, reused between quick tables; none: read for every table.
    watermark::HorizonReader *horizons = nullptr;
};

// What the user allowed this run, for one table.
struct Allow {
    bool replace = false; // replace a destination table pgincr does not manage (--replace)
    bool deletes = false; // delete past max_delete_fraction (--allow-deletes)
};

// Syncs one table. Never throws for a table-level problem: the result says what
// went wrong, and the saved state keeps its previous mark.
TableResult sync(Sessions &sessions, const config::Settings &settings, const config::Table &cfg,
                 const state::Store &store, const Allow &allow = {});

} // namespace pgincr::table_sync
