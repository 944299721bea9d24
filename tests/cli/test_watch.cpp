// `pgincr watch` end to end: cycles back to back under one lock until in sync, a server
// restart in the middle of a cycle, SIGTERM during a large load and during a merge, a
// second signal, a cron sync while it runs, the webhook's events, cdc tables streaming
// between cycles, and a footprint that stays flat over a thousand cycles.
#include "support/background.hpp"
#include "support/http_receiver.hpp"
#include "support/pause.hpp"
#include "support/pipeline.hpp"

#include <atomic>
#include <csignal>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

using namespace pgincr;
using namespace pgincr::test;
using Json = nlohmann::json;

namespace {

const char *orders_config =
    R"([{"name": "orders", "replication_key": "updated_at", "unique_cols": ["id"]}])";

void seed(Pipeline &p, int rows, int pad = 10) {
    p.src().exec("CREATE TABLE orders (id bigint PRIMARY KEY, v int, pad text, updated_at "
                 "timestamptz NOT NULL DEFAULT clock_timestamp())");
    p.src().exec(fmt::format("INSERT INTO orders (id, v, pad) SELECT g, g, repeat('x', {}) FROM "
                             "generate_series(1, {}) g",
                             pad, rows));
    p.tables(orders_config);
}

// The number of the last cycle the log reports as done ("cycle N: ..."), 0 for none.
long last_cycle(const std::string &log) {
    static const std::regex done(R"(cycle (\d+): \d+ table)");
    long n = 0;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), done); it != std::sregex_iterator();
         ++it)
        n = std::stol((*it)[1]);
    return n;
}

std::vector<Json> bodies(const HttpReceiver &hook) {
    std::vector<Json> out;
    for (const auto &r : hook.requests())
        out.push_back(Json::parse(r.body));
    return out;
}

std::vector<std::string> events(const HttpReceiver &hook) {
    std::vector<std::string> out;
    for (const auto &b : bodies(hook))
        out.push_back(b.at("event").get<std::string>());
    return out;
}

bool waits_on_lock(pg::Connection &dst) {
    for (int i = 0; i < 3000; ++i) {
        if (scalar(dst, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgincr' "
                        "AND wait_event_type = 'Lock'") != "0")
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

bool copying(pg::Connection &dst) {
    for (int i = 0; i < 3000; ++i) {
        if (scalar(dst, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgincr' "
                        "AND query LIKE 'COPY%'") != "0")
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

} // namespace

TEST_CASE("watch: --until-in-sync returns once the writes stop - with destination = source") {
    HttpReceiver hook;
    Pipeline p("watch_in_sync", "public", "replica", "WEBHOOK_URL=" + hook.url() + "\n");
    seed(p, 1000);
    Background watch(p.dir,
                     {"watch", "--interval", "1", "--until-in-sync", "--max-runtime", "300"});
    REQUIRE(watch.wait_for("cycle 1:"));

    // Writes for a few cycles: inserts and updates, each its own transaction.
    auto writer = admin(pg::Side::source, p.dbs.name());
    for (int i = 0; i < 60; ++i) {
        writer->exec(
            fmt::format("INSERT INTO orders (id, v, pad) VALUES ({}, {}, 'new')", 100000 + i, i));
        writer->exec(fmt::format("UPDATE orders SET v = v + 1, updated_at = clock_timestamp() "
                                 "WHERE id = {}",
                                 1 + i * 7));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE(watch.running()); // writes kept it from being in sync
    long done_when_stopped = last_cycle(watch.log());
    REQUIRE(done_when_stopped >= 2);

    CHECK(watch.wait() == 0);
    auto log = watch.log();
    INFO(log);
    // The cycle running when the writes stopped may have missed the last ones, the next
    // one copies them, and the one after that finds nothing new.
    long in_sync = last_cycle(log);
    CHECK(in_sync <= done_when_stopped + 3);
    CHECK(log.find(fmt::format("in sync at")) != std::string::npos);
    CHECK(p.equal("orders"));

    // The webhook: the start, each cycle that changed something, the stop with its moment.
    auto got = bodies(hook);
    REQUIRE(got.size() >= 3);
    CHECK(got.front().at("event") == "watch_started");
    CHECK(got.back().at("event") == "watch_stopped");
    CHECK(got.back().at("reason") == "in_sync");
    CHECK(got.back().at("in_sync_at").is_string());
    CHECK(got.back().at("exit_code") == 0);
    long cycles_posted = 0;
    for (std::size_t i = 1; i + 1 < got.size(); ++i) {
        CHECK(got[i].at("event") == "watch");
        CHECK(got[i].at("cycle").get<long>() >= 1);
        CHECK(got[i].at("tables").at(0).at("rows_merged").get<long>() > 0);
        ++cycles_posted;
    }
    // The cycle that was in sync changed nothing, so it was not posted.
    CHECK(cycles_posted < in_sync);
}

TEST_CASE("watch: a destination restart and a source restart during a cycle end the cycle - not "
          "the process") {
    Pipeline p("watch_restart");
    seed(p, 1000);
    REQUIRE_SYNC(p, 0);

    SUBCASE("destination") {
        p.src().exec("UPDATE orders SET v = -v, updated_at = clock_timestamp() WHERE id <= 100");
        Pause pause(p.dir, "incremental-after-copy");
        Background watch(p.dir, {"watch", "--interval", "0.2", "--until-in-sync"}, pause.env());
        REQUIRE(pause.reached());
        restart_server("dest"); // the staged rows and the lock's session are gone
        pause.go();
        CHECK(watch.wait() == 0);
        auto log = watch.log();
        INFO(log);
        CHECK(log.find("took the run lock again") != std::string::npos);
        CHECK(log.find(", 1 failed") != std::string::npos);
    }
    SUBCASE("source") {
        p.src().exec("UPDATE orders SET v = -v, updated_at = clock_timestamp() WHERE id <= 100");
        Pause pause(p.dir, "snapshot-taken");
        Background watch(p.dir, {"watch", "--interval", "0.2", "--until-in-sync"}, pause.env());
        REQUIRE(pause.reached());
        restart_server("source"); // the snapshot's session is gone
        pause.go();
        CHECK(watch.wait() == 0);
        auto log = watch.log();
        INFO(log);
        CHECK(log.find(", 1 failed") != std::string::npos);
    }
    // The Pipeline's own sessions died with the server.
    auto src = admin(pg::Side::source, p.dbs.name());
    auto dst = admin(pg::Side::dest, p.dbs.name());
    CHECK(digest(*src, "public.orders") == digest(*dst, "replica.orders"));
}

TEST_CASE("watch: a server it cannot reach is retried with a backoff and reported") {
    HttpReceiver hook;
    Pipeline p("watch_unreachable", "public", "replica",
               "WEBHOOK_URL=" + hook.url() + "\nPGINCR_WATCH_UNREACHABLE_CYCLES=2\n");
    seed(p, 10);
    // A port nothing listens on, for the destination.
    auto env = p.dir.read(".env");
    env = std::regex_replace(env, std::regex("DEST_PORT=\\d+"), "DEST_PORT=1");
    p.dir.write(".env", env);
    auto r = p.run({"watch", "--interval", "0", "--max-runtime", "4"});
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("cycle 1 cannot start (1 attempt in a row)") != std::string::npos);
    CHECK(r.err.find("retrying in 1 s") != std::string::npos);
    CHECK(r.err.find("retrying in 2 s") != std::string::npos);
    auto ev = events(hook);
    REQUIRE(ev.size() == 3);
    CHECK(ev[0] == "watch_started");
    CHECK(ev[1] == "watch_unreachable");
    CHECK(ev[2] == "watch_stopped");
    CHECK(bodies(hook)[1].at("attempts") == 2);
    CHECK(r.err.find(p.dbs.name()) != std::string::npos); // names the server it tried
}

TEST_CASE("watch: SIGTERM during a large load exits 4 - the table and state stay as they were") {
    Pipeline p("watch_sigterm_load");
    seed(p, 1000);
    REQUIRE_SYNC(p, 0);
    auto before = digest(p.dst(), "replica.orders");
    auto state_before = p.dir.read("sync-state/orders.json");
    p.src().exec("INSERT INTO orders (id, v, pad) SELECT g, g, repeat('y', 300) FROM "
                 "generate_series(1001, 300000) g");
    REQUIRE(p.run({"reset", "orders"}).exit_code == 0);

    Background watch(p.dir, {"watch", "--interval", "30"});
    REQUIRE(copying(p.dst()));
    auto signalled = std::chrono::steady_clock::now();
    watch.signal(SIGTERM);
    CHECK(watch.wait() == 4);
    MESSAGE("exit after SIGTERM during the load: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - signalled)
                   .count()
            << " ms");
    INFO(watch.log());
    CHECK(watch.log().find("interrupted") != std::string::npos);
    CHECK(digest(p.dst(), "replica.orders") == before);
    auto st = p.state("orders");
    CHECK(st->reset_requested); // the reload is still to do
    CHECK(st->watermark == state::from_json(state_before, "x").watermark);
    CHECK(st->last_sync->result == "failed");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders"));
}

TEST_CASE("watch: SIGTERM during a merge rolls it back and exits 4 - the next run converges") {
    Pipeline p("watch_sigterm_merge");
    seed(p, 20000);
    REQUIRE_SYNC(p, 0);
    auto before = digest(p.dst(), "replica.orders");
    auto mark_before = p.state("orders")->watermark;
    p.src().exec("UPDATE orders SET v = -v, updated_at = clock_timestamp()");

    // A reader of the destination table holds the merge back, so that the signal
    // arrives while the merge statement runs.
    auto reader = admin(pg::Side::dest, p.dbs.name());
    reader->exec("BEGIN");
    reader->exec("LOCK TABLE replica.orders IN SHARE MODE");
    Background watch(p.dir, {"watch", "--interval", "30"});
    REQUIRE(waits_on_lock(p.dst()));
    watch.signal(SIGTERM);
    CHECK(watch.wait() == 4);
    reader->exec("ROLLBACK");
    INFO(watch.log());
    CHECK(digest(p.dst(), "replica.orders") == before);
    CHECK(p.state("orders")->watermark == mark_before);
    CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.orders_stg") == "0");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders"));
}

TEST_CASE("watch: a second signal ends it at once - losing nothing") {
    // The stop's webhook never gets an answer: only a second signal ends the wait.
    HttpReceiver hook({200, 200, HttpReceiver::hang});
    Pipeline p("watch_second_signal", "public", "replica",
               "WEBHOOK_URL=" + hook.url() + "\nWEBHOOK_TIMEOUT_SECONDS=60\n");
    seed(p, 1000);
    Background watch(p.dir, {"watch", "--interval", "30"});
    REQUIRE(watch.wait_for("cycle 1:"));
    watch.signal(SIGTERM);
    REQUIRE(watch.wait_for("exit 4"));
    for (int i = 0; i < 500 && hook.request_count() < 3; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(hook.request_count() == 3); // start, cycle 1, and the stop that hangs
    watch.signal(SIGTERM);
    CHECK(watch.wait() == 4);
    CHECK(watch.log().find("not delivered") == std::string::npos);
    CHECK(p.equal("orders"));
    auto next = p.sync({{"WEBHOOK_URL", ""}}); // the receiver still hangs
    CHECK(next.exit_code == 0);
    CHECK(p.equal("orders"));
}

TEST_CASE("watch: a cron sync while it runs exits 3") {
    Pipeline p("watch_lock");
    seed(p, 100);
    Background watch(p.dir, {"watch", "--interval", "1"});
    REQUIRE(watch.wait_for("cycle 1:"));
    auto cron = p.sync();
    CHECK(cron.exit_code == 3);
    CHECK(cron.err.find("another pgincr run") != std::string::npos);
    watch.signal(SIGTERM);
    CHECK(watch.wait() == 4);
    CHECK(p.sync().exit_code == 0); // the lock went with it
}

TEST_CASE("watch: WEBHOOK_EVENTS chooses the cycles that are posted") {
    // Cycle 1 loads the table, cycles 2 and 3 find nothing new.
    const std::vector<std::pair<std::string, std::vector<std::string>>> expected = {
        {"all", {"watch_started", "watch", "watch", "watch", "watch_stopped"}},
        {"changes", {"watch_started", "watch", "watch_stopped"}},
        {"failures", {"watch_started", "watch_stopped"}},
    };
    for (const auto &[choice, want] : expected) {
        CAPTURE(choice);
        HttpReceiver hook;
        Pipeline p("watch_events_" + choice, "public", "replica",
                   fmt::format("WEBHOOK_URL={}\nWEBHOOK_EVENTS={}\n", hook.url(), choice));
        seed(p, 100);
        auto r = p.run({"watch", "--interval", "0", "--cycles", "3"});
        INFO(r.all());
        CHECK(r.exit_code == 0);
        CHECK(events(hook) == want);
        auto got = bodies(hook);
        if (choice == "all")
            CHECK(got[3].at("cycle") == 3);
        CHECK(got.back().at("reason") == "cycles");
    }
}

TEST_CASE("watch: cdc tables stream between cycles") {
    std::string slot = "pgincr_t_watch_cdc";
    SlotCleanup cleanup{slot};
    Pipeline p("watch_cdc", "public", "replica", "PGINCR_SLOT=" + slot + "\n");
    p.src().exec("CREATE TABLE events (id bigint PRIMARY KEY, note text)");
    p.src().exec("INSERT INTO events SELECT g, 'e' || g FROM generate_series(1, 100) g");
    p.tables(R"([{"name": "events", "mode": "cdc"}])");
    Background watch(p.dir, {"watch", "--interval", "600"});
    // The load is in once the destination table is.
    bool loaded = false;
    for (int i = 0; i < 3000 && !loaded; ++i) {
        loaded = scalar(p.dst(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'replica' "
                                 "AND tablename = 'events'") == "1";
        if (!loaded)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE(loaded);
    REQUIRE(p.dst_count("events") == 100);
    // Cycle 1 follows the stream until cycle 2, ten minutes away: the change arrives
    // while it does.
    p.src().exec("INSERT INTO events VALUES (101, 'streamed')");
    p.src().exec("UPDATE events SET note = 'changed' WHERE id = 1");
    p.src().exec("DELETE FROM events WHERE id = 2");
    bool arrived = false;
    for (int i = 0; i < 3000 && !arrived; ++i) {
        arrived = scalar(p.dst(), "SELECT count(*) FROM replica.events WHERE id = 101") == "1" &&
                  scalar(p.dst(), "SELECT count(*) FROM replica.events WHERE id = 2") == "0";
        if (!arrived)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(arrived);
    CHECK(last_cycle(watch.log()) == 0); // still in cycle 1
    watch.signal(SIGTERM);
    CHECK(watch.wait() == 4);
    INFO(watch.log());
    CHECK(p.equal("events"));
    REQUIRE(p.run({"teardown"}).exit_code == 0);
    p.src().exec("DROP PUBLICATION IF EXISTS " + slot);
}

TEST_CASE("watch: memory and open files after 1000 cycles equal those after 10") {
    Pipeline p("watch_footprint");
    seed(p, 100);
    auto r = p.run({"watch", "--interval", "0", "--cycles", "1000", "--verbose"});
    REQUIRE(r.exit_code == 0);
    static const std::regex line(R"(cycle (\d+): rss (\d+) kB, (\d+) open files)");
    std::map<long, std::pair<long, long>> at;
    for (auto it = std::sregex_iterator(r.err.begin(), r.err.end(), line);
         it != std::sregex_iterator(); ++it)
        at[std::stol((*it)[1])] = {std::stol((*it)[2]), std::stol((*it)[3])};
    REQUIRE(at.count(10));
    REQUIRE(at.count(1000));
    MESSAGE("rss after 10 cycles " << at[10].first << " kB, after 1000 " << at[1000].first
                                   << " kB; open files " << at[10].second << " and "
                                   << at[1000].second);
    CHECK(at[1000].second == at[10].second);
    // A leak of 64 bytes a cycle would be 63 kB here; the allocator's own slack is less.
    CHECK(at[1000].first <= at[10].first + 64);
    // Sessions: one per server plus the lock's, whatever the cycle.
    CHECK(p.equal("orders"));
}
