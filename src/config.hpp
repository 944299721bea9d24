#pragma once
// pgincr's configuration, parsed once into typed structs: the .env keys of the
// incremental-replication tool (plus pgincr's own) and its tables-config.json array.
#include "pg/connection.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgincr::config {

// cdc: changes streamed from a logical replication slot (modes/cdc.hpp) instead of
// read by a timestamp cursor.
enum class Mode { incremental_deduped, incremental_append, full_refresh, cdc };
const char *mode_name(Mode mode);

enum class Indexes { unique, all };

// What happens to destination rows whose unique columns no longer exist in the source
// (apply/deletes.hpp): kept (the old tool's behaviour), deleted, or marked in a
// `_pgincr_deleted_at` column.
enum class Deletes { ignore, hard, soft };
const char *deletes_name(Deletes deletes);

// Whose change wins when a row changed in the destination too (apply/conflicts.hpp):
// the source's (today's behaviour), the newer by a column, or the destination's, with
// manual also recording each conflict in <destination>_conflicts.
enum class Conflict { source_wins, newest_wins, target_wins, manual };
const char *conflict_name(Conflict conflict);

// How a full load's rows travel (see ARCHITECTURE.md): pgincr's own binary COPY, the
// default because it measured faster, or pg_dump's data stream.
enum class LoadVia { copy, pg_dump };

struct Filter {
    std::string where;               // trusted SQL predicate on the source table
    std::vector<std::string> params; // bound to $1, $2 ... by libpq
};

struct Table {
    int entry = 0;                        // 1-based position in tables-config.json
    std::string name;                     // source table in SOURCE_SCHEMA
    std::string destination;              // destination table in DEST_SCHEMA
    std::string replication_key;          // empty only for full-refresh and cdc
    std::vector<std::string> unique_cols; // empty: use the source's primary key
    Mode mode = Mode::incremental_deduped;
    std::optional<Filter> filter;
    int lookback_seconds = 0;
    Indexes indexes = Indexes::unique;
    Deletes deletes = Deletes::ignore;
    int delete_check_seconds = 0;     // 0: the delete check runs on every sync
    double max_delete_fraction = 0.1; // of the destination's rows, per run
    Conflict conflict = Conflict::source_wins;
    std::string conflict_column; // newest_wins: compared instead of replication_key
    // Overrides LAG_ALERT_SECONDS for this entry (alerts/lag_alert.hpp).
    std::optional<double> lag_alert_seconds;
};

// What of an entry shapes its destination table's rows and unique index (mode and
// filter), as a digest saved with the state: a destination loaded under other options
// is reloaded, not continued. "" for a plain entry, so state files written before
// this existed still match.
std::string options_signature(const Table &t);

// Which of `pgincr watch`'s cycles are posted (WEBHOOK_EVENTS); the start, the stop
// and the unreachable servers always are, and `sync` posts every run.
enum class WebhookEvents { all, changes, failures };

struct Webhook {
    std::string url; // empty: no webhook
    std::string secret;
    int timeout_seconds = 10;
    int attempts = 3;
    WebhookEvents events = WebhookEvents::changes; // cycles that changed or failed
};

struct Settings {
    pg::ConnInfo source;
    pg::ConnInfo dest;
    std::string source_schema;
    std::string dest_schema;
    std::string pipeline_name;
    Webhook webhook;
    // Used when the source role cannot see other sessions' transactions.
    int fallback_lookback_seconds = 900;
    LoadVia load_via = LoadVia::copy; // PGINCR_LOAD_VIA
    // Bounds every lock wait of pgincr's sessions (the swap behind readers, LOCK TABLE
    // on the source behind a migration); the table fails and is retried next run.
    int lock_timeout_seconds = 300; // PGINCR_LOCK_TIMEOUT_SECONDS
    // SOURCE_PRIMARY_*: when the source is a hot standby, the late-commit horizon is
    // read on its primary (same database, TLS settings and, by default, role).
    std::optional<pg::ConnInfo> source_primary;
    // The cdc mode's slot and publication on the source: PGINCR_SLOT and
    // PGINCR_PUBLICATION, by default "pgincr_<PIPELINE_NAME>" (lower-cased, other
    // characters as "_"), one of each per working directory.
    std::string slot;
    std::string publication;
    // `pgincr watch --until-in-sync`: a table is in sync when its cycle copied nothing
    // new and its lag is under this (PGINCR_IN_SYNC_LAG_SECONDS).
    int in_sync_lag_seconds = 5;
    // `pgincr watch`: cycles in a row that could not reach a server (or take the lock)
    // before the webhook hears of it (PGINCR_WATCH_UNREACHABLE_CYCLES).
    int watch_unreachable_cycles = 3;
    // Lag alerts (alerts/lag_alert.hpp): the threshold of entries without their own
    // "lag_alert_seconds" (LAG_ALERT_SECONDS; unset: off), and the least time between
    // two lag_alert posts of one table (LAG_ALERT_REPEAT_SECONDS).
    std::optional<double> lag_alert_seconds;
    double lag_alert_repeat_seconds = 3600;
};

// The lag alert threshold of an entry: its own, else the pipeline's; none: no alerts.
std::optional<double> lag_alert_threshold(const Settings &settings, const Table &table);

// "pgincr_" + `pipeline` made a valid slot name: lower-case letters, digits and "_",
// at most 63 bytes.
std::string default_slot_name(const std::string &pipeline);

// Whether any entry streams changes (the cdc mode needs a slot and a publication).
bool any_cdc(const std::vector<Table> &tables);

// Reads `env_file` (optional when every key comes from the environment), lets real
// environment variables override it, applies defaults, and validates. Throws
// ConfigError naming the file and the key.
Settings load_settings(const std::filesystem::path &env_file,
                       const std::map<std::string, std::string> &environment);

// The process environment as a map (for load_settings).
std::map<std::string, std::string> process_environment();

// Parses tables-config.json. Throws ConfigError naming the file, the entry and the key;
// invalid JSON is reported with line and column.
std::vector<Table> parse_tables(const std::string &json_text, const std::string &origin);
std::vector<Table> load_tables(const std::filesystem::path &file);

// The entries named by destination, in the order given (all when `names` is empty).
// An unknown name is a ConfigError: "<what><name>: no such table in <origin>".
std::vector<Table> select_tables(const std::vector<Table> &all,
                                 const std::vector<std::string> &names, const std::string &origin,
                                 const std::string &what);

} // namespace pgincr::config
