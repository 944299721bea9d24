#include "commands/cycle.hpp"

#include "modes/cdc_sync.hpp"
#include "modes/table_sync.hpp"
#include "source/watermark.hpp"
#include "util/fault.hpp"
#include "util/log.hpp"
#include "util/signals.hpp"

#include <algorithm>
#include <exception>
#include <fmt/format.h>
#include <future>

namespace pgincr::cycle {

namespace {

// Once per process, from the first table's horizon: the role and the server are the same
// for every table.
void warn_if_windowed(const watermark::Horizon &h, const config::Settings &settings) {
    if (h.from_primary)
        log::info("",
                  "the source is a hot standby: the late-commit horizon is read on the "
                  "primary {}",
                  settings.source_primary->describe());
    else if (h.standby)
        log::warn("", "{}", watermark::standby_warning(settings));
    if (!h.sees_all)
        log::warn("",
                  "role \"{}\" cannot see other roles' transactions, so the late-commit guard "
                  "re-reads a {} s window instead; run: GRANT pg_read_all_stats TO \"{}\";",
                  h.from_primary ? settings.source_primary->user : settings.source.user,
                  settings.fallback_lookback_seconds,
                  h.from_primary ? settings.source_primary->user : settings.source.user);
}

void log_slot(const SlotReport &s) {
    if (!s.exists) {
        log::warn("", "replication slot \"{}\" does not exist on the source", s.name);
        return;
    }
    auto mb = [](const std::optional<std::int64_t> &b) {
        return b ? fmt::format("{:.1f} MB", static_cast<double>(*b) / 1048576.0) : "?";
    };
    auto line =
        fmt::format("replication slot \"{}\": wal_status {}, retains {} of WAL, {} "
                    "behind{}",
                    s.name, s.wal_status.value_or("?"), mb(s.retained_bytes), mb(s.behind_bytes),
                    s.behind_seconds ? fmt::format(" ({:.0f}s)", *s.behind_seconds) : "");
    if (s.wal_status && (*s.wal_status == "lost" || *s.wal_status == "unreserved"))
        log::error("", "{}", line);
    else
        log::info("", "{}", line);
}

TableResult not_started(const config::Table &cfg, const std::string &why) {
    TableResult r;
    r.name = cfg.name;
    r.destination = cfg.destination;
    r.config_mode = config::mode_name(cfg.mode);
    r.error = "not started: " + why;
    return r;
}

// A session that died (server restart, network) is reopened. `probe`: ask the server,
// because libpq only learns that the peer went away when it next uses the socket, and
// a watch's sessions sit idle between cycles.
// Returns whether a new session was opened.
bool ensure_open(std::unique_ptr<pg::Connection> &conn, const pg::ConnInfo &info,
                 bool probe = false) {
    if (conn && probe && conn->ok()) {
        try {
            conn->exec("SELECT 1", pg::Expect::value);
        } catch (const pg::PgError &) {
            conn.reset();
        }
    }
    if (conn && conn->ok())
        return false;
    conn.reset();
    conn = std::make_unique<pg::Connection>(info);
    return true;
}

bool listed(const std::vector<std::string> &names, const std::string &destination) {
    return std::find(names.begin(), names.end(), destination) != names.end();
}

} // namespace

void log_result(const TableResult &r) {
    if (!r.ok) {
        log::error(r.destination, "{} failed after {:.1f}s: {}", sync_mode_name(r.mode),
                   static_cast<double>(r.duration_ms) / 1000.0, r.error);
        return;
    }
    if (r.config_mode == config::mode_name(config::Mode::cdc)) {
        log::info(r.destination, "{}: {} rows loaded, {} changes applied, position {}, lag {}",
                  sync_mode_name(r.mode), r.rows_copied, r.rows_merged - r.rows_copied,
                  r.watermark.value_or("(none)"),
                  r.lag_seconds ? fmt::format("{:.0f}s", *r.lag_seconds) : "n/a");
        return;
    }
    log::info(r.destination,
              "{}: {} rows copied, {} merged, {} deleted{} in {:.2f}s, mark {}, lag {}",
              sync_mode_name(r.mode), r.rows_copied, r.rows_merged, r.rows_deleted,
              r.conflicts ? fmt::format(", {} conflicts (destination rows kept)", r.conflicts) : "",
              static_cast<double>(r.duration_ms) / 1000.0, r.watermark.value_or("(none)"),
              r.lag_seconds ? fmt::format("{:.0f}s", *r.lag_seconds) : "n/a");
}

Runner::Runner(const config::Settings &settings, const std::filesystem::path &config_file,
               const state::Store &store, lock::RunLock &lock)
    : settings_(settings), config_file_(config_file), store_(store), lock_(lock) {}

void Runner::connect() {
    open(true);
}

void Runner::start() {
    open(false);
}

// Each new session costs its server a backend start and both sides an authentication
// exchange: the source's is opened on a thread of its own while the lock is taken.
void Runner::open(bool strict) {
    std::exception_ptr source_error;
    auto source = std::async(std::launch::async, [&] {
        try {
            open_sessions(strict);
        } catch (...) {
            source_error = std::current_exception();
        }
    });
    try {
        if (!lock_.held()) {
            lock_.acquire();
            log::debug("", "[dest] connected to {}: the run lock and the destination's work",
                       settings_.dest.describe());
            if (lock_lost_)
                log::info("", "took the run lock again");
            lock_lost_.reset();
        } else if (strict) {
            lock_.ensure_held();
        }
    } catch (...) {
        source.wait();
        throw;
    }
    source.wait();
    if (source_error && strict)
        std::rethrow_exception(source_error);
}

void Runner::open_sessions(bool probe) {
    if (ensure_open(src_, settings_.source, probe))
        log::debug("", "[source] connected to {}", settings_.source.describe());
    if (!source_checked_) {
        standby_ = watermark::in_recovery(*src_);
        if (!standby_ && settings_.source_primary)
            log::info("", "the source is not a standby: SOURCE_PRIMARY_HOST is not used");
        source_checked_ = true;
    }
    if (standby_ && settings_.source_primary)
        ensure_open(primary_, *settings_.source_primary, probe);
}

void Runner::seen_horizon(const watermark::Horizon &h) {
    if (horizon_checked_)
        return;
    horizon_checked_ = true;
    warn_if_windowed(h, settings_);
}

pg::Connection *Runner::source() noexcept {
    try {
        ensure_open(src_, settings_.source, true);
        return src_.get();
    } catch (const std::exception &e) {
        log::warn("", "[source] unreachable after the cycle: {}", e.what());
        return nullptr;
    }
}

void Runner::close() {
    src_.reset();
    primary_.reset();
}

// Once lost, the lock stays lost for the rest of the run: it only reports.
void Runner::check_lock() {
    if (lock_lost_)
        return;
    try {
        lock_.ensure_held();
    } catch (const lock::LockLostError &e) {
        lock_lost_ = e.what();
        log::error("", "{}", e.what());
    }
}

TableResult Runner::sync_one(const config::Table &cfg, const Options &options) {
    TableResult r;
    try {
        open_sessions(false);
        table_sync::Sessions sessions{*src_,
                                      lock_.session(),
                                      primary_.get(),
                                      &lock_,
                                      [this](const watermark::Horizon &h) { seen_horizon(h); },
                                      &horizons_};
        r = table_sync::sync(sessions, settings_, cfg, store_,
                             {listed(options.replace, cfg.destination),
                              listed(options.allow_deletes, cfg.destination)});
    } catch (const std::exception &e) {
        r.name = cfg.name;
        r.destination = cfg.destination;
        r.config_mode = config::mode_name(cfg.mode);
        r.error = e.what();
    }
    return r;
}

void Runner::sync_cdc(const std::vector<config::Table> &tables, const Options &options,
                      RunSummary &run) {
    check_lock();
    if (signals::interrupted() || lock_lost_) {
        for (const auto &cfg : tables)
            run.tables.push_back(
                not_started(cfg, lock_lost_ ? "the run lost its lock" : "the run was interrupted"));
        return;
    }
    cdc_sync::Request req;
    req.tables = tables;
    for (const auto &t : config::load_tables(config_file_))
        if (t.mode == config::Mode::cdc)
            req.configured.push_back(t);
    req.replace = options.replace;
    req.follow_until = options.follow_until;
    try {
        ensure_open(src_, settings_.source);
        table_sync::Sessions sessions{*src_, lock_.session(), nullptr, &lock_, {}, nullptr};
        auto out = cdc_sync::run(sessions, settings_, store_, req);
        for (auto &r : out.tables) {
            log_result(r);
            run.tables.push_back(std::move(r));
        }
        run.slot = out.slot;
        if (run.slot)
            log_slot(*run.slot);
    } catch (const std::exception &e) {
        for (const auto &cfg : tables) {
            auto r = not_started(cfg, e.what());
            r.error = e.what();
            log_result(r);
            run.tables.push_back(std::move(r));
        }
    }
}

RunSummary Runner::run(const std::vector<config::Table> &tables, const Options &options) {
    RunSummary run;
    run.pipeline = settings_.pipeline_name;
    run.started_at = std::chrono::system_clock::now();
    std::vector<config::Table> cdc_tables;
    for (const auto &cfg : tables) {
        if (cfg.mode == config::Mode::cdc) {
            cdc_tables.push_back(cfg);
            continue;
        }
        if (signals::interrupted()) {
            run.tables.push_back(not_started(cfg, "the run was interrupted"));
            continue;
        }
        check_lock();
        if (lock_lost_) {
            run.tables.push_back(not_started(cfg, "the run lost its lock"));
            continue;
        }
        auto r = sync_one(cfg, options);
        log_result(r);
        run.tables.push_back(std::move(r));
        fault::point("after-table");
    }
    if (!cdc_tables.empty()) {
        // One slot and one stream serve every cdc entry: they sync together.
        sync_cdc(cdc_tables, options, run);
        // The log and the webhook list tables in the config's order.
        auto pos = [&](const TableResult &r) {
            return std::find_if(
                       tables.begin(), tables.end(),
                       [&](const config::Table &t) { return t.destination == r.destination; }) -
                   tables.begin();
        };
        std::stable_sort(
            run.tables.begin(), run.tables.end(),
            [&](const TableResult &a, const TableResult &b) { return pos(a) < pos(b); });
    }
    check_lock(); // a lock lost during the last table still means this run was not alone
    run.interrupted = signals::interrupted();
    run.finished_at = std::chrono::system_clock::now();
    return run;
}

} // namespace pgincr::cycle
