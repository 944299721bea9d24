#include "summary.hpp"

#include <fmt/format.h>
#include <random>

namespace pgincr {

const char *sync_mode_name(SyncMode mode) {
    switch (mode) {
    case SyncMode::initial:
        return "initial";
    case SyncMode::incremental:
        return "incremental";
    case SyncMode::reset:
        return "reset";
    case SyncMode::skipped:
        return "skipped";
    case SyncMode::cdc:
        return "cdc";
    }
    return "?";
}

std::string new_run_id() {
    std::random_device rd;
    std::mt19937_64 gen((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
    return fmt::format("{:016x}", gen());
}

std::string RunSummary::status() const {
    std::size_t ok = 0;
    for (const auto &t : tables)
        ok += t.ok ? 1 : 0;
    if (!interrupted && ok == tables.size())
        return "succeeded";
    return ok == 0 ? "failed" : "partial";
}

} // namespace pgincr
