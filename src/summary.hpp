#pragma once
// What one `pgincr sync` run did, table by table: filled in by the runner, read by
// the log, `pgincr status` and the webhook payload.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgincr {

// cdc: changes streamed from the slot were applied (modes/cdc.hpp).
enum class SyncMode { initial, incremental, reset, skipped, cdc };
const char *
sync_mode_name(SyncMode mode); // "initial" | "incremental" | "reset" | "skipped" | "cdc"

struct TableResult {
    std::string name;        // source table
    std::string destination; // destination table
    std::string config_mode; // "incremental-deduped" | "incremental-append" | "full-refresh"
    SyncMode mode = SyncMode::skipped;
    bool ok = false;
    std::int64_t rows_copied = 0;
    std::int64_t rows_merged = 0;
    std::int64_t rows_deleted = 0;        // by the delete check (soft: newly marked)
    std::int64_t conflicts = 0;           // rows held back by the entry's conflict policy
    std::optional<std::string> watermark; // as PostgreSQL prints it
    std::optional<double> lag_seconds;
    std::int64_t duration_ms = 0;
    std::string error; // empty when ok; never holds a secret
};

// The cdc mode's slot on the source (slot safety): what it costs the source and how
// far behind it is.
struct SlotReport {
    std::string name;
    bool exists = false;
    std::optional<std::string> wal_status;      // reserved | extended | unreserved | lost
    std::optional<std::int64_t> retained_bytes; // WAL the slot keeps on the source's disk
    std::optional<std::int64_t> behind_bytes;   // the source's WAL end minus the confirmed position
    std::optional<std::string> confirmed_lsn;
    // Age of the oldest change not applied yet: the time since the position this run
    // drained to was read on the source (0 when nothing is behind).
    std::optional<double> behind_seconds;
};

// A random 16-hex-digit id for one run (or one watch cycle), as the webhook carries it.
std::string new_run_id();

struct RunSummary {
    std::string pipeline;
    std::string run_id;
    std::chrono::system_clock::time_point started_at;
    std::chrono::system_clock::time_point finished_at;
    std::vector<TableResult> tables;
    std::optional<SlotReport> slot; // when the run has cdc entries
    bool interrupted = false;
    // `pgincr watch`: the cycle's number (from 1), and how many cycles before it in a row
    // failed; the webhook's event is then "watch" instead of "sync".
    std::optional<long> cycle;

    // "succeeded" when every table is ok, "failed" when none is, "partial" otherwise.
    std::string status() const;
};

} // namespace pgincr
