#pragma once
// The per-table sync state: one human-readable JSON file per destination table in
// sync-state/, written atomically (temp file, fsync, rename) and only after the
// destination transaction committed.
#include <filesystem>
#include <optional>
#include <string>

namespace pgincr::state {

struct LastSync {
    std::string at; // ISO-8601 UTC
    std::string mode;
    std::string result; // "ok" | "failed"
    std::int64_t rows_copied = 0;
    std::int64_t rows_merged = 0;
    std::int64_t duration_ms = 0;
    std::string error;
    std::optional<double> lag_seconds;
    std::int64_t rows_deleted = 0; // removed (or marked, for soft deletes) by the delete check
    std::int64_t conflicts = 0;    // source rows held back by the entry's conflict policy
};

struct TableState {
    std::string source_table;
    std::string destination;
    std::string replication_key;
    std::string key_type;
    // The high-water mark exactly as PostgreSQL prints it (µs, explicit offset for
    // timestamptz). Empty: no mark yet, the next incremental sync reads every row.
    std::optional<std::string> watermark;
    std::string fingerprint;      // of the source table's definition
    std::string dest_signature;   // of the destination table right after the load
    std::string options;          // config::options_signature() of the entry at the load
    bool reset_requested = false; // `pgincr reset`
    // When the last delete check (or the full load that stands for one) committed, as
    // the destination prints it; decides whether `delete_check_seconds` are up.
    std::optional<std::string> deletes_checked_at;
    // cdc entries: the stream position the destination's rows reflect. Changes of
    // source transactions that commit before it are in the rows already (skipped).
    std::optional<std::string> lsn;
    std::optional<LastSync> last_sync;
};

class Store {
  public:
    explicit Store(std::filesystem::path dir);
    const std::filesystem::path &dir() const { return dir_; }

    // The file for a destination table; names are percent-encoded so that any
    // identifier makes a safe file name.
    std::filesystem::path path_for(const std::string &destination) const;
    // A file another concern keeps beside a table's state (the lag alert's:
    // alerts/lag_alert.hpp): <encoded destination>.<suffix>.json. Names are encoded
    // with '.' escaped, so it never collides with a table's own file.
    std::filesystem::path sibling_path(const std::string &destination,
                                       const std::string &suffix) const;
    std::optional<TableState> load(const std::string &destination) const;
    void save(const TableState &state) const;

    // The incremental-replication tool's sync-state/<table>.txt, if any.
    std::optional<std::string> legacy_mark(const std::string &table) const;
    std::filesystem::path legacy_path(const std::string &table) const;

  private:
    std::filesystem::path dir_;
};

// Atomic write: temp file in the same directory, fsync, rename, fsync the directory.
void write_file_atomically(const std::filesystem::path &path, const std::string &content);

// The whole file, or nothing when it does not exist (or cannot be opened).
std::optional<std::string> read_file(const std::filesystem::path &path);

std::string to_json(const TableState &state);
TableState from_json(const std::string &text, const std::string &origin);

} // namespace pgincr::state
