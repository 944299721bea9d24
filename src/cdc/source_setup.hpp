#pragma once
// What the source needs for the cdc mode, read with plain queries on pgincr's read-only
// source session (groundwork for issue 15), each problem said with what to run:
// wal_level = logical, a role allowed to replicate, a replica identity that carries
// the unique columns; and the slot's state for slot safety (WAL retained, lost).
#include "pg/connection.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgincr::cdc {

// Problems of the server and the role, each with the SQL or setting that fixes it;
// empty when the cdc mode can stream. `role`: the source role pgincr connects as.
std::vector<std::string> source_problems(pg::Connection &src, const std::string &role);

// "" when the table's replica identity carries exactly `unique_cols` (or is FULL), else
// what is wrong and the ALTER TABLE that fixes it.
std::string replica_identity_problem(pg::Connection &src, const std::string &schema,
                                     const std::string &table,
                                     const std::vector<std::string> &unique_cols);

struct SlotStatus {
    bool exists = false;
    std::string plugin;
    bool active = false;
    std::optional<std::string> confirmed_flush;
    std::optional<std::string> wal_status; // reserved | extended | unreserved | lost
    std::optional<std::int64_t> retained_bytes;
    std::optional<std::int64_t> behind_bytes;
    bool lost() const { return wal_status && *wal_status == "lost"; }
};
SlotStatus slot_status(pg::Connection &src, const std::string &slot);

// A warning when nothing bounds the WAL a slot may keep (max_slot_wal_keep_size = -1).
std::optional<std::string> unbounded_slot_warning(pg::Connection &src);

} // namespace pgincr::cdc
