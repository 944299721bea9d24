#include "commands/watch.hpp"

#include "alerts/lag_alert.hpp"
#include "commands/cycle.hpp"
#include "config.hpp"
#include "lock.hpp"
#include "pgincr/version.hpp"
#include "state.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "util/signals.hpp"
#include "util/time.hpp"
#include "webhook.hpp"

#include <algorithm>
#include <dirent.h>
#include <fmt/format.h>
#include <fstream>
#include <memory>

namespace pgincr::commands {

namespace {

using clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

// What the process holds, for the per-cycle debug line: flat over hours is the promise.
struct Footprint {
    long rss_kb = -1;
    int open_files = -1;
};

Footprint footprint() {
    Footprint f;
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0)
            f.rss_kb = std::stol(line.substr(6));
    if (DIR *d = ::opendir("/proc/self/fd")) {
        f.open_files = 0;
        while (auto *e = ::readdir(d))
            f.open_files += e->d_name[0] != '.' ? 1 : 0;
        ::closedir(d);
        --f.open_files; // the directory itself
    }
    return f;
}

bool should_post(config::WebhookEvents events, const RunSummary &run) {
    bool failed = std::any_of(run.tables.begin(), run.tables.end(),
                              [](const TableResult &t) { return !t.ok; });
    bool any_change = std::any_of(run.tables.begin(), run.tables.end(),
                                  [](const TableResult &t) { return changed(t); });
    switch (events) {
    case config::WebhookEvents::all:
        return true;
    case config::WebhookEvents::changes:
        return failed || any_change || run.interrupted;
    case config::WebhookEvents::failures:
        return failed || run.interrupted;
    }
    return true;
}

// After `failures` cycles in a row that could not start: 1 s, doubling, at most the
// interval or a minute, whichever is longer.
std::chrono::milliseconds backoff(int failures, std::chrono::milliseconds interval) {
    std::chrono::milliseconds cap =
        std::max<std::chrono::milliseconds>(interval, std::chrono::minutes(1));
    std::chrono::milliseconds wait{1000};
    for (int i = 1; i < failures && wait < cap; ++i)
        wait *= 2;
    return std::min(wait, cap);
}

std::string table_list(const std::vector<config::Table> &tables) {
    std::string out;
    for (const auto &t : tables)
        out += (out.empty() ? "" : ", ") + t.destination;
    return out;
}

} // namespace

bool changed(const TableResult &r) {
    return r.ok && (r.mode == SyncMode::initial || r.mode == SyncMode::reset ||
                    r.rows_merged != 0 || r.rows_deleted != 0);
}

bool in_sync(const TableResult &r, int lag_seconds) {
    if (!r.ok)
        return false;
    bool full_refresh = r.config_mode == config::mode_name(config::Mode::full_refresh);
    if (!full_refresh && changed(r))
        return false;
    return !r.lag_seconds || *r.lag_seconds < lag_seconds;
}

int watch(const cli::Options &o) {
    auto settings = config::load_settings(o.env_file, config::process_environment());
    auto tables = config::select_tables(config::load_tables(o.config_file), o.tables,
                                        o.config_file.string(), "--table ");
    signals::install();
    const std::chrono::milliseconds interval{static_cast<long>(o.interval_seconds * 1000)};
    std::optional<clock::time_point> deadline;
    if (o.max_runtime_seconds > 0)
        deadline = clock::now() +
                   std::chrono::milliseconds(static_cast<long>(o.max_runtime_seconds * 1000));
    bool any_cdc = config::any_cdc(tables);

    // The state directory's flock for the whole life of the process, so that a cron
    // `pgincr sync` of this directory exits 3 even while the destination is down; the
    // advisory lock is taken by the first cycle that reaches the destination.
    auto lock = std::make_unique<lock::RunLock>(o.state_dir, settings.dest, settings.dest_schema,
                                                lock::RunLock::Take::later);
    state::Store store(o.state_dir);
    cycle::Runner runner(settings, o.config_file, store, *lock);
    log::info("",
              "pipeline {}: watching {} table(s) from {} schema \"{}\" to {} schema \"{}\", "
              "every {:g} s{}{}",
              settings.pipeline_name, tables.size(), settings.source.describe(),
              settings.source_schema, settings.dest.describe(), settings.dest_schema,
              o.interval_seconds, o.until_in_sync ? ", until in sync" : "",
              deadline ? fmt::format(", for at most {:g} s", o.max_runtime_seconds) : "");
    Json start_fields;
    start_fields["tables"] = Json::array();
    for (const auto &t : tables)
        start_fields["tables"].push_back(t.destination);
    start_fields["interval_seconds"] = o.interval_seconds;
    start_fields["until_in_sync"] = o.until_in_sync;
    start_fields["max_runtime_seconds"] = deadline ? Json(o.max_runtime_seconds) : Json(nullptr);
    webhook::deliver(settings.webhook, "watch start", [&] {
        return webhook::event_payload("watch_started", settings.pipeline_name,
                                      fmt::format("pgincr watch started for pipeline {}: {}",
                                                  settings.pipeline_name, table_list(tables)),
                                      start_fields, pgincr::version);
    });

    long cycles = 0;
    int unreachable = 0;
    bool unreachable_posted = false;
    std::string reason = "signal";
    std::optional<std::string> in_sync_at;
    bool last_failed = false;
    auto past_deadline = [&] { return deadline && clock::now() >= *deadline; };
    // Waits until `until`, or less when the deadline or a signal comes first.
    auto wait_until = [&](clock::time_point until) {
        if (deadline)
            until = std::min(until, *deadline);
        auto left = until - clock::now();
        if (left > clock::duration::zero())
            signals::sleep_for(std::chrono::duration_cast<std::chrono::milliseconds>(left));
    };

    for (;;) {
        if (signals::interrupted())
            break;
        if (past_deadline()) {
            reason = "max_runtime";
            break;
        }
        if (o.max_cycles > 0 && cycles >= o.max_cycles) {
            reason = "cycles";
            break;
        }
        try {
            runner.connect();
        } catch (const std::exception &e) {
            if (signals::interrupted())
                break;
            ++unreachable;
            last_failed = true;
            auto wait = backoff(unreachable, interval);
            log::warn("", "cycle {} cannot start ({} attempt{} in a row): {}; retrying in {} s",
                      cycles + 1, unreachable, unreachable == 1 ? "" : "s", e.what(),
                      wait.count() / 1000);
            if (unreachable == settings.watch_unreachable_cycles) {
                unreachable_posted = true;
                Json f;
                f["attempts"] = unreachable;
                f["error"] = e.what();
                webhook::deliver(settings.webhook, "unreachable alert", [&] {
                    return webhook::event_payload(
                        "watch_unreachable", settings.pipeline_name,
                        fmt::format("pgincr watch of pipeline {}: {} cycles in a row could not "
                                    "start: {}",
                                    settings.pipeline_name, unreachable, e.what()),
                        f, pgincr::version);
                });
            }
            wait_until(clock::now() + wait);
            continue;
        }
        if (unreachable > 0) {
            log::info("", "both servers answer again after {} failed attempt{}", unreachable,
                      unreachable == 1 ? "" : "s");
            if (unreachable_posted) {
                Json f;
                f["attempts"] = unreachable;
                webhook::deliver(settings.webhook, "reconnect notice", [&] {
                    return webhook::event_payload(
                        "watch_reconnected", settings.pipeline_name,
                        fmt::format("pgincr watch of pipeline {}: both servers answer again",
                                    settings.pipeline_name),
                        f, pgincr::version);
                });
            }
            unreachable = 0;
            unreachable_posted = false;
        }

        ++cycles;
        auto next_start = clock::now() + interval;
        cycle::Options co;
        if (any_cdc && interval.count() > 0)
            co.follow_until = deadline ? std::min(next_start, *deadline) : next_start;
        auto run = runner.run(tables, co);
        run.run_id = new_run_id();
        run.cycle = cycles;
        std::size_t failed = std::count_if(run.tables.begin(), run.tables.end(),
                                           [](const TableResult &t) { return !t.ok; });
        std::size_t moved = std::count_if(run.tables.begin(), run.tables.end(),
                                          [](const TableResult &t) { return changed(t); });
        last_failed = failed > 0 || run.interrupted;
        log::info("", "cycle {}: {} table(s) ok, {} failed, {} changed", cycles,
                  run.tables.size() - failed, failed, moved);
        auto fp = footprint();
        log::debug("", "cycle {}: rss {} kB, {} open files", cycles, fp.rss_kb, fp.open_files);
        if (should_post(settings.webhook.events, run))
            webhook::notify(settings.webhook, run);
        if (!run.interrupted && !runner.lock_lost() && lag_alert::enabled(settings, tables))
            lag_alert::check(settings, store, tables, run, runner.source(), runner.primary());
        if (run.interrupted)
            break;
        if (o.until_in_sync && !runner.lock_lost() &&
            std::all_of(run.tables.begin(), run.tables.end(), [&](const TableResult &t) {
                return in_sync(t, settings.in_sync_lag_seconds);
            })) {
            in_sync_at = timeutil::iso_utc(run.finished_at, true);
            reason = "in_sync";
            log::info("", "in sync at {}: cycle {} copied nothing new, every lag under {} s",
                      *in_sync_at, cycles, settings.in_sync_lag_seconds);
            break;
        }
        wait_until(next_start);
    }

    runner.close();
    int code = exit_ok;
    if (reason == "signal")
        code = exit_interrupted;
    else if (reason != "in_sync" && o.until_in_sync)
        code = exit_not_in_sync;
    else if (reason != "in_sync" && last_failed)
        code = exit_table_failed;
    std::string message =
        reason == "in_sync" ? fmt::format("pipeline {} is in sync (cycle {}, at {})",
                                          settings.pipeline_name, cycles, in_sync_at.value_or(""))
        : reason == "signal"
            ? fmt::format("pgincr watch of pipeline {} stopped by signal {} after {} cycle(s)",
                          settings.pipeline_name, signals::last_signal(), cycles)
        : reason == "cycles"
            ? fmt::format("pgincr watch of pipeline {} stopped after {} cycle(s){}",
                          settings.pipeline_name, cycles, o.until_in_sync ? ", not in sync" : "")
            : fmt::format("pgincr watch of pipeline {} stopped after {:g} s and {} cycle(s){}",
                          settings.pipeline_name, o.max_runtime_seconds, cycles,
                          o.until_in_sync ? ", not in sync" : "");
    log::info("", "{}; exit {}", message, code);
    Json f;
    f["reason"] = reason;
    f["cycles"] = cycles;
    f["in_sync_at"] = in_sync_at ? Json(*in_sync_at) : Json(nullptr);
    f["exit_code"] = code;
    // The lock goes first: a slow webhook must not hold the next run back.
    lock.reset();
    webhook::deliver(settings.webhook, "watch stop", [&] {
        return webhook::event_payload("watch_stopped", settings.pipeline_name, message, f,
                                      pgincr::version);
    });
    return code;
}

} // namespace pgincr::commands
