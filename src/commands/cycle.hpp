#pragma once
// One pass over a run's tables, shared by `pgincr sync` (one cycle) and `pgincr watch`
// (cycles back to back): the tables in config order, one at a time, each failure
// isolated to its table; the cdc entries together at the end; the run lock checked
// before every table. The sessions outlive a cycle, so that a watch keeps one session
// per side for its whole life, and one that died (a restart, a dropped connection) is
// reopened.
#include "cli/options.hpp"
#include "config.hpp"
#include "lock.hpp"
#include "pg/connection.hpp"
#include "source/watermark.hpp"
#include "state.hpp"
#include "summary.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgincr::cycle {

struct Options {
    std::vector<std::string> replace;       // sync --replace
    std::vector<std::string> allow_deletes; // sync --allow-deletes
    // watch: the cdc entries keep streaming until then instead of stopping at the WAL
    // end read after their loads.
    std::optional<std::chrono::steady_clock::time_point> follow_until;
};

class Runner {
  public:
    Runner(const config::Settings &settings, const std::filesystem::path &config_file,
           const state::Store &store, lock::RunLock &lock);

    // Makes sure the next cycle can start: the run lock is held (taken again after its
    // session died, unless another run took it: LockedError) and a session to each
    // server answers. Throws what stops the cycle from starting (pg::PgError, LockedError).
    // The lock's session is the run's destination session; the source's is opened at
    // the same time, so that the two servers start their backends together.
    void connect();
    // `pgincr sync`: takes the lock and opens the source session at once, without
    // probing; a source that cannot be reached fails each table, as a later one would.
    void start();

    // Syncs `tables` once. Never throws for a table's problem: its result says it.
    RunSummary run(const std::vector<config::Table> &tables, const Options &options);

    // Set when the lock was lost during the last run (another run may have started).
    const std::optional<std::string> &lock_lost() const { return lock_lost_; }

    // The source session, reopened when it died (nullptr when the source cannot be
    // reached), and the primary's when the source is a standby read through
    // SOURCE_PRIMARY_HOST: for what reads the source after a cycle (lag alerts).
    pg::Connection *source() noexcept;
    pg::Connection *primary() const { return primary_.get(); }

    // Closes the sessions (the lock is the caller's).
    void close();

  private:
    void check_lock();
    void open(bool strict);
    void open_sessions(bool probe);
    void seen_horizon(const watermark::Horizon &h);
    TableResult sync_one(const config::Table &cfg, const Options &options);
    void sync_cdc(const std::vector<config::Table> &tables, const Options &options,
                  RunSummary &run);

    const config::Settings &settings_;
    std::filesystem::path config_file_;
    const state::Store &store_;
    lock::RunLock &lock_;
    std::unique_ptr<pg::Connection> src_, primary_; // the destination's: lock_.session()
    watermark::HorizonReader horizons_;             // one read for the quick tables of a cycle
    bool source_checked_ = false;
    bool horizon_checked_ = false;
    bool standby_ = false;
    std::optional<std::string> lock_lost_;
};

// The log line of one table's result.
void log_result(const TableResult &r);

} // namespace pgincr::cycle
