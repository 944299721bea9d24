#include "commands/sync.hpp"

#include "config.hpp"
#include "lock.hpp"
#include "modes/cdc_sync.hpp"
#include "modes/table_sync.hpp"
#include "source/watermark.hpp"
#include "state.hpp"
#include "summary.hpp"
#include "util/error.hpp"
#include "util/fault.hpp"
#include "util/log.hpp"
#include "util/signals.hpp"
#include "util/time.hpp"
#include "webhook.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <memory>
#include <random>

namespace pgincr::commands {

namespace {

std::string new_run_id() {
    std::random_device rd;
    std::mt19937_64 gen((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
    return fmt::format("{:016x}", gen());
}

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
              "{}: {} rows copied, {} merged, {} deleted in {:.2f}s, mark {}, lag {}",
              sync_mode_name(r.mode), r.rows_copied, r.rows_merged, r.rows_deleted,
              static_cast<double>(r.duration_ms) / 1000.0, r.watermark.value_or("(none)"),
              r.lag_seconds ? fmt::format("{:.0f}s", *r.lag_seconds) : "n/a");
}

// A session that died (server restart, network) is reopened for the next table.
void ensure_open(std::unique_ptr<pg::Connection> &conn, const pg::ConnInfo &info) {
    if (!conn || PQstatus(conn->get()) != CONNECTION_OK) {
        conn.reset();
        conn = std::make_unique<pg::Connection>(info);
    }
}

// Once per run, not per table: the role and the server are the same for every table.
void warn_if_windowed(pg::Connection &src, pg::Connection *primary,
                      const config::Settings &settings) {
    auto h = watermark::read_horizon(src, primary, settings.fallback_lookback_seconds);
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

} // namespace

int sync(const cli::Options &o) {
    auto settings = config::load_settings(o.env_file, config::process_environment());
    auto tables = config::select_tables(config::load_tables(o.config_file), o.tables,
                                        o.config_file.string(), "--table ");
    for (const auto &n : o.replace)
        if (std::none_of(tables.begin(), tables.end(),
                         [&](const config::Table &t) { return t.destination == n; }))
            throw ConfigError(fmt::format("--replace {}: no such table among the tables of this "
                                          "run ({})",
                                          n, o.config_file.string()));
    for (const auto &n : o.allow_deletes) {
        auto it = std::find_if(tables.begin(), tables.end(),
                               [&](const config::Table &t) { return t.destination == n; });
        if (it == tables.end())
            throw ConfigError(fmt::format("--allow-deletes {}: no such table among the tables of "
                                          "this run ({})",
                                          n, o.config_file.string()));
        if (it->deletes == config::Deletes::ignore)
            throw ConfigError(fmt::format("--allow-deletes {}: the entry has no \"deletes\" "
                                          "option, so its sync never deletes ({})",
                                          n, o.config_file.string()));
    }
    signals::install();

    RunSummary run;
    run.pipeline = settings.pipeline_name;
    run.run_id = new_run_id();
    run.started_at = std::chrono::system_clock::now();

    // The lock is held for the tables only: a slow webhook must not block the next run.
    auto lock = std::make_unique<lock::RunLock>(o.state_dir, settings.dest, settings.dest_schema);
    state::Store store(o.state_dir);
    log::info("", "pipeline {}: syncing {} table(s) from {} schema \"{}\" to {} schema \"{}\"",
              settings.pipeline_name, tables.size(), settings.source.describe(),
              settings.source_schema, settings.dest.describe(), settings.dest_schema);

    std::unique_ptr<pg::Connection> src, dst, primary;
    bool source_checked = false;
    bool standby = false;
    std::optional<std::string> lock_lost;
    // Once lost, the lock stays lost: the rest of the run only reports.
    auto check_lock = [&] {
        if (lock_lost)
            return;
        try {
            lock->ensure_held();
        } catch (const lock::LockLostError &e) {
            lock_lost = e.what();
            log::error("", "{}", e.what());
        }
    };
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
        if (lock_lost) {
            run.tables.push_back(not_started(cfg, "the run lost its lock"));
            continue;
        }
        TableResult r;
        try {
            ensure_open(src, settings.source);
            if (!source_checked) {
                standby = watermark::in_recovery(*src);
                if (!standby && settings.source_primary)
                    log::info("", "the source is not a standby: SOURCE_PRIMARY_HOST is not used");
            }
            if (standby && settings.source_primary)
                ensure_open(primary, *settings.source_primary);
            if (!source_checked) {
                source_checked = true;
                warn_if_windowed(*src, primary.get(), settings);
            }
            ensure_open(dst, settings.dest);
            table_sync::Sessions sessions{*src, *dst, primary.get(), lock.get()};
            auto listed = [&](const std::vector<std::string> &names) {
                return std::find(names.begin(), names.end(), cfg.destination) != names.end();
            };
            r = table_sync::sync(sessions, settings, cfg, store,
                                 {listed(o.replace), listed(o.allow_deletes)});
        } catch (const std::exception &e) {
            r.name = cfg.name;
            r.destination = cfg.destination;
            r.config_mode = config::mode_name(cfg.mode);
            r.error = e.what();
        }
        log_result(r);
        run.tables.push_back(std::move(r));
        fault::point("after-table");
    }
    if (!cdc_tables.empty()) {
        // One slot and one stream serve every cdc entry: they sync together.
        check_lock();
        if (signals::interrupted() || lock_lost) {
            for (const auto &cfg : cdc_tables)
                run.tables.push_back(not_started(cfg, lock_lost ? "the run lost its lock"
                                                                : "the run was interrupted"));
        } else {
            cdc_sync::Request req;
            req.tables = cdc_tables;
            for (const auto &t : config::load_tables(o.config_file))
                if (t.mode == config::Mode::cdc)
                    req.configured.push_back(t);
            req.replace = o.replace;
            try {
                ensure_open(src, settings.source);
                ensure_open(dst, settings.dest);
                table_sync::Sessions sessions{*src, *dst, nullptr, lock.get()};
                auto out = cdc_sync::run(sessions, settings, store, req);
                for (auto &r : out.tables) {
                    log_result(r);
                    run.tables.push_back(std::move(r));
                }
                run.slot = out.slot;
                if (run.slot)
                    log_slot(*run.slot);
            } catch (const std::exception &e) {
                for (const auto &cfg : cdc_tables) {
                    auto r = not_started(cfg, e.what());
                    r.error = e.what();
                    log_result(r);
                    run.tables.push_back(std::move(r));
                }
            }
        }
        // The log and the webhook list tables in the config's order.
        std::stable_sort(run.tables.begin(), run.tables.end(),
                         [&](const TableResult &a, const TableResult &b) {
                             auto pos = [&](const TableResult &r) {
                                 return std::find_if(tables.begin(), tables.end(),
                                                     [&](const config::Table &t) {
                                                         return t.destination == r.destination;
                                                     }) -
                                        tables.begin();
                             };
                             return pos(a) < pos(b);
                         });
    }
    check_lock(); // a lock lost during the last table still means this run was not alone
    run.interrupted = signals::interrupted();
    run.finished_at = std::chrono::system_clock::now();
    src.reset();
    dst.reset();
    primary.reset();
    lock.reset();

    std::size_t failed = 0;
    for (const auto &t : run.tables)
        failed += t.ok ? 0 : 1;
    log::info("", "pipeline {} {}: {} table(s) ok, {} failed", run.pipeline, run.status(),
              run.tables.size() - failed, failed);
    webhook::notify(settings.webhook, run);

    if (run.interrupted)
        return exit_interrupted;
    if (lock_lost)
        return exit_locked;
    return failed == 0 ? exit_ok : exit_table_failed;
}

} // namespace pgincr::commands
