#pragma once
// `pgincr verify` for one table: every copied column of every row compared between
// source and destination by the range-checksum engine (diff/range_diff.hpp), under a
// source snapshot and a REPEATABLE READ destination transaction. With repair, the
// differing and missing rows are copied again through <table>_stg and the merge, and
// extra rows removed where the entry's "deletes" allows it, in one destination
// transaction; then the table is compared again.
#include "config.hpp"
#include "diff/range_diff.hpp"
#include "pg/connection.hpp"
#include "state.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pgincr::verify {

constexpr std::size_t sample_keys = 10;

struct Kind {
    std::int64_t count = 0;
    std::vector<std::string> samples; // up to sample_keys keys, as describe() prints them
    void add(const std::vector<diff::Key> &keys);
};

struct Report {
    std::string name;        // source table
    std::string destination; // destination table
    bool compared = false;   // false: `error` says why the table could not be compared
    std::string error;
    std::int64_t source_rows = 0;
    std::int64_t dest_rows = 0;
    Kind missing;   // in the source only
    Kind extra;     // in the destination only, and not expected
    Kind changed;   // in both, different
    Kind in_flight; // missing or changed, at or after the saved mark
    // Destination rows the entry keeps on purpose: deleted in the source ("deletes":
    // "ignore", or marked by "soft"), or earlier versions (incremental-append).
    Kind expected;
    std::string expected_as; // "deleted in the source" | "earlier versions" | ""
    // Rows with a NULL in a unique column, compared as one group (count and checksum).
    std::int64_t null_key_rows_source = 0;
    std::int64_t null_key_rows_dest = 0;
    bool null_keys_differ = false;
    std::int64_t repaired = 0; // rows copied again or removed by --repair
    std::int64_t duration_ms = 0;
    bool equal() const {
        return compared && missing.count == 0 && extra.count == 0 && changed.count == 0 &&
               !null_keys_differ;
    }
};

// Compares (and with `repair`, repairs) one table. Never throws for a table-level
// problem: the report says what went wrong. `before_commit` runs before a repair
// commits (the run lock's check; it may throw lock::LockLostError, which propagates).
Report run(pg::Connection &src, pg::Connection &dst, const config::Settings &settings,
           const config::Table &cfg, const std::optional<state::TableState> &saved, bool repair,
           const std::function<void()> &before_commit = {});

} // namespace pgincr::verify
