#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace pgincr::cli {

// Options shared by every command.
struct Options {
    std::filesystem::path env_file = ".env";
    std::filesystem::path config_file = "tables-config.json";
    std::filesystem::path state_dir = "sync-state";
    bool json = false;                // status --json
    bool verbose = false;             // debug log lines
    std::vector<std::string> tables;  // reset TABLE..., sync --table
    std::vector<std::string> replace; // sync --replace: tables pgincr may take from their users
    std::vector<std::string> allow_deletes; // sync --allow-deletes: past max_delete_fraction once
    bool repair = false;                    // verify --repair
    double interval_seconds = 30;           // watch --interval
    bool until_in_sync = false;             // watch --until-in-sync
    double max_runtime_seconds = 0;         // watch --max-runtime (0: no limit)
    long max_cycles = 0;                    // watch --cycles (0: no limit)
    int jobs = 0;                           // sync/watch --jobs (0: PGINCR_JOBS)
};

} // namespace pgincr::cli
