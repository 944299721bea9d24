#include "cli/cli.hpp"

#include "cli/options.hpp"
#include "commands/check.hpp"
#include "commands/status.hpp"
#include "commands/sync.hpp"
#include "commands/teardown.hpp"
#include "commands/verify.hpp"
#include "commands/watch.hpp"
#include "config.hpp"
#include "pg/error.hpp"
#include "pgincr/version.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fmt/format.h>

namespace pgincr::cli {

namespace {

void add_common(CLI::App &cmd, Options &o) {
    cmd.add_option("--env", o.env_file, "dotenv file with the connection settings")
        ->capture_default_str();
    cmd.add_option("--config", o.config_file, "tables-config.json to read")->capture_default_str();
    cmd.add_option("--state-dir", o.state_dir, "directory of the per-table sync state")
        ->capture_default_str();
    cmd.add_flag("-v,--verbose", o.verbose, "log debug lines too");
}

void add_jobs(CLI::App &cmd, Options &o) {
    cmd.add_option("--jobs", o.jobs,
                   "read and write a large table's full load in this many parallel streams "
                   "(default: PGINCR_JOBS, else 1)")
        ->check(CLI::Range(1, config::max_jobs));
}

} // namespace

int run(int argc, char **argv) {
    CLI::App app{
        "pgincr: keep tables of one PostgreSQL schema copied into another database, "
        "incrementally.\n\nExit codes: 0 every table fine; 1 a table failed (or check found "
        "a blocking problem, or verify a difference); 2 usage or configuration error; 3 another "
        "run holds "
        "the lock; 4 interrupted by a signal; 5 watch --until-in-sync was not in sync by "
        "--max-runtime.",
        "pgincr"};
    app.set_version_flag("--version", std::string("pgincr ") + version);
    app.require_subcommand(1);

    Options o;
    auto *sync = app.add_subcommand("sync", "sync every configured table (initial, reset or "
                                            "incremental), then POST the webhook");
    add_common(*sync, o);
    sync->add_option("--table", o.tables, "sync only these tables (destination names)");
    sync->add_option("--replace", o.replace,
                     "let this run replace these existing destination tables (destination "
                     "names), which pgincr did not create");
    sync->add_option("--allow-deletes", o.allow_deletes,
                     "let this run's delete check delete more than max_delete_fraction of these "
                     "tables (destination names)");
    add_jobs(*sync, o);
    auto *watch = app.add_subcommand(
        "watch", "sync cycles back to back (cdc tables stream in between) until a signal, "
                 "--until-in-sync or --max-runtime");
    add_common(*watch, o);
    watch->add_option("--table", o.tables, "watch only these tables (destination names)");
    watch
        ->add_option("--interval", o.interval_seconds, "seconds from one cycle's start to the next")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 86400.0));
    watch->add_flag("--until-in-sync", o.until_in_sync,
                    "stop (exit 0) after the first cycle that copied nothing new with every "
                    "lag under PGINCR_IN_SYNC_LAG_SECONDS");
    watch
        ->add_option("--max-runtime", o.max_runtime_seconds,
                     "stop after this many seconds (0: never); with --until-in-sync, exit 5 "
                     "when not in sync by then")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1e9));
    watch->add_option("--cycles", o.max_cycles, "stop after this many cycles (0: never)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    add_jobs(*watch, o);
    auto *check = app.add_subcommand("check", "connect to both servers and tell, table by table, "
                                              "whether the setup will sync");
    add_common(*check, o);
    auto *status = app.add_subcommand("status", "show each table's watermark, last run and lag");
    add_common(*status, o);
    status->add_flag("--json", o.json, "print JSON instead of a table");
    auto *verify = app.add_subcommand(
        "verify", "compare every row of each table between source and destination; exit 1 on "
                  "a difference");
    add_common(*verify, o);
    verify->add_option("tables", o.tables, "destination table names (default: every table)");
    verify->add_flag("--json", o.json, "print JSON instead of a table");
    verify->add_flag("--repair", o.repair,
                     "copy the missing and changed rows again and remove the extra ones (where "
                     "the entry's deletes allow), then compare again");
    auto *reset = app.add_subcommand("reset", "make the next sync reload these tables whole");
    add_common(*reset, o);
    reset->add_option("tables", o.tables, "destination table names")->required();
    auto *teardown = app.add_subcommand(
        "teardown", "drop the cdc mode's replication slot and the publication pgincr created on "
                    "the source (a slot left behind keeps WAL forever)");
    add_common(*teardown, o);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        int code = app.exit(e);
        return code == 0 ? exit_ok : exit_config;
    }
    if (o.verbose)
        log::set_min_level(log::Level::debug);

    // The one top-level catch: each error type has its exit code.
    try {
        if (sync->parsed())
            return commands::sync(o);
        if (watch->parsed())
            return commands::watch(o);
        if (check->parsed())
            return commands::check(o);
        if (status->parsed())
            return commands::status(o);
        if (reset->parsed())
            return commands::reset(o);
        if (verify->parsed())
            return commands::verify(o);
        if (teardown->parsed())
            return commands::teardown(o);
        return exit_config;
    } catch (const ConfigError &e) {
        log::error("", "{}", e.what());
        return exit_config;
    } catch (const LockedError &e) {
        log::error("", "{}", e.what());
        return exit_locked;
    } catch (const InterruptedError &e) {
        log::error("", "{}", e.what());
        return exit_interrupted;
    } catch (const std::exception &e) {
        log::error("", "{}", e.what());
        return exit_table_failed;
    }
}

} // namespace pgincr::cli
