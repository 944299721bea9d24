#include "commands/sync.hpp"

#include "alerts/lag_alert.hpp"
#include "commands/cycle.hpp"
#include "config.hpp"
#include "lock.hpp"
#include "state.hpp"
#include "summary.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "util/signals.hpp"
#include "webhook.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <memory>

namespace pgincr::commands {

int sync(const cli::Options &o) {
    auto settings = config::load_settings(o.env_file, config::process_environment());
    if (o.jobs > 0)
        settings.jobs = o.jobs;
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

    // The lock is held for the tables only: a slow webhook must not block the next run.
    auto lock = std::make_unique<lock::RunLock>(o.state_dir, settings.dest, settings.dest_schema,
                                                lock::RunLock::Take::later);
    state::Store store(o.state_dir);
    cycle::Runner runner(settings, o.config_file, store, *lock);
    runner.start(); // the advisory lock, and the source session alongside
    log::info("", "pipeline {}: syncing {} table(s) from {} schema \"{}\" to {} schema \"{}\"",
              settings.pipeline_name, tables.size(), settings.source.describe(),
              settings.source_schema, settings.dest.describe(), settings.dest_schema);
    auto run = runner.run(tables, {o.replace, o.allow_deletes, std::nullopt});
    run.run_id = new_run_id();
    auto lock_lost = runner.lock_lost();
    // Under the lock: the alert state is read and written by one run at a time.
    if (!run.interrupted && !lock_lost && lag_alert::enabled(settings, tables))
        lag_alert::check(settings, store, tables, run, runner.source(), runner.primary());
    runner.close();
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
