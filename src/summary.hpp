#pragma once
// What one `pgincr sync` run did, table by table: filled in by the runner, read by
// the log, `pgincr status` and the webhook payload.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgincr {

enum class SyncMode { initial, incremental, reset, skipped };
const char *sync_mode_name(SyncMode mode); // "initial" | "incremental" | "reset" | "skipped"

struct TableResult {
    std::string name;        // source table
    std::string destination; // destination table
    std::string config_mode; // "incremental-deduped" | "incremental-append" | "full-refresh"
    SyncMode mode = SyncMode::skipped;
    bool ok = false;
    std::int64_t rows_copied = 0;
    std::int64_t rows_merged = 0;
    std::int64_t rows_deleted = 0; // by the delete check (soft: newly marked)
    std::optional<std::string> watermark; // as PostgreSQL prints it
    std::optional<double> lag_seconds;
    std::int64_t duration_ms = 0;
    std::string error; // empty when ok; never holds a secret
};

struct RunSummary {
    std::string pipeline;
    std::string run_id;
    std::chrono::system_clock::time_point started_at;
    std::chrono::system_clock::time_point finished_at;
    std::vector<TableResult> tables;
    bool interrupted = false;

    // "succeeded" when every table is ok, "failed" when none is, "partial" otherwise.
    std::string status() const;
};

} // namespace pgincr
