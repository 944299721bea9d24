// Lag alerts end to end: a source transaction left open holds every time-keyed mark back;
// past the threshold the webhook hears it once (naming that transaction), and once more
// when it commits and the lag is gone, across cron syncs and watch processes alike.
#include "support/http_receiver.hpp"
#include "support/pipeline.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <thread>

using namespace pgincr;
using namespace pgincr::test;
using Json = nlohmann::json;

namespace {

// The lag_alert and lag_recovered bodies received so far, in order.
std::vector<Json> lag_events(const HttpReceiver &hook) {
    std::vector<Json> out;
    for (const auto &r : hook.requests()) {
        auto body = Json::parse(r.body);
        auto event = body.value("event", "");
        if (event == "lag_alert" || event == "lag_recovered")
            out.push_back(body);
    }
    return out;
}

std::size_t count(const std::vector<Json> &events, const std::string &event,
                  const std::string &table) {
    std::size_t n = 0;
    for (const auto &e : events)
        n += e["event"] == event && e["table"] == table ? 1 : 0;
    return n;
}

void seed(Pipeline &p) {
    p.src().exec("CREATE TABLE orders (id bigint PRIMARY KEY, v int, updated_at timestamptz NOT "
                 "NULL DEFAULT clock_timestamp())");
    p.src().exec("INSERT INTO orders (id, v) SELECT g, g FROM generate_series(1, 100) g");
}

// A source session that opens a transaction (with an xid) and keeps it open: every mark
// stays at its start while rows keep arriving after it.
struct OpenTransaction {
    explicit OpenTransaction(Pipeline &p) : conn(admin_info(pg::Side::source, p.dbs.name())) {
        conn.exec("SET application_name = 'lag_holder'");
        conn.exec("BEGIN");
        conn.exec("SELECT pg_catalog.txid_current()");
        pid = scalar(conn, "SELECT pg_catalog.pg_backend_pid()");
    }
    void commit() { conn.exec("COMMIT"); }
    pg::Connection conn;
    std::string pid;
};

// Rows committed after the open transaction began, `seconds` apart: the newest key
// runs ahead of the held mark by at least that.
void rows_after(Pipeline &p, int first_id, int seconds) {
    p.src().exec(fmt::format("INSERT INTO orders (id, v) VALUES ({}, 1)", first_id));
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    p.src().exec(fmt::format("INSERT INTO orders (id, v) VALUES ({}, 2)", first_id + 1));
}

const Json &status_row(const Json &status, const std::string &destination) {
    for (const auto &row : status)
        if (row["destination"] == destination)
            return row;
    FAIL("no table " << destination << " in " << status.dump());
    throw std::logic_error("unreachable");
}

Json status_json(const Pipeline &p) {
    auto r = p.run({"status", "--json"});
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    return Json::parse(r.out);
}

} // namespace

TEST_CASE("lag alerts: an open source transaction past the threshold fires one lag_alert over "
          "several syncs - its commit one lag_recovered - then nothing") {
    HttpReceiver hook({200});
    Pipeline p("lag_alert_sync", "public", "replica",
               fmt::format("WEBHOOK_URL={}\nLAG_ALERT_SECONDS=2\n", hook.url()));
    seed(p);
    p.tables(R"([{"name": "orders", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);
    REQUIRE_SYNC(p, 0);
    CHECK(lag_events(hook).empty());
    auto st = status_json(p);
    CHECK(status_row(st, "orders")["lag_alert"]["active"] == false);
    CHECK(status_row(st, "orders")["lag_alert"]["threshold_seconds"] == 2.0);

    OpenTransaction open(p);
    rows_after(p, 101, 3);
    for (int i = 0; i < 3; ++i) {
        auto r = p.sync();
        INFO(r.all());
        REQUIRE(r.exit_code == 0);
        if (i == 0)
            CHECK(r.err.find("lag alert") != std::string::npos);
        p.src().exec(fmt::format("INSERT INTO orders (id, v) VALUES ({}, 3)", 200 + i));
    }
    auto events = lag_events(hook);
    REQUIRE(events.size() == 1);
    const Json alert = events[0]; // a copy: `events` is read again below
    CHECK(alert["event"] == "lag_alert");
    CHECK(alert["table"] == "orders");
    CHECK(alert["source_table"] == "orders");
    CHECK(alert["lag_seconds"].get<double>() >= 2.0);
    CHECK(alert["threshold_seconds"] == 2.0);
    CHECK(alert["rows_waiting"].get<long long>() >= 2);
    CHECK(alert["repeat"] == false);
    REQUIRE(alert["causes"].size() >= 1);
    const auto &cause = alert["causes"][0];
    CHECK(cause["kind"] == "open_transaction");
    CHECK(std::to_string(cause["pid"].get<long long>()) == open.pid);
    CHECK(cause["application_name"] == "lag_holder");
    CHECK(cause["state"] == "idle in transaction");
    CHECK(alert["message"].get<std::string>().find("lag_holder") != std::string::npos);

    // status shows the alert, its cause, and the live lag behind it.
    st = status_json(p);
    const auto &row = status_row(st, "orders");
    CHECK(row["lag_alert"]["active"] == true);
    CHECK(row["lag_alert"]["causes"][0]["application_name"] == "lag_holder");
    CHECK(row["lag_seconds"].get<double>() >= 2.0);
    CHECK(row["rows_at_or_after_mark"].get<long long>() >= 2);
    auto text = p.run({"status"});
    CHECK(text.out.find("lag alert since") != std::string::npos);

    open.commit();
    auto r = p.sync();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("lag recovered") != std::string::npos);
    events = lag_events(hook);
    REQUIRE(events.size() == 2);
    CHECK(events[1]["event"] == "lag_recovered");
    CHECK(events[1]["table"] == "orders");
    CHECK(events[1]["lag_seconds"].get<double>() < 2.0);
    CHECK(events[1]["since"] == alert["since"]);

    REQUIRE_SYNC(p, 0);
    REQUIRE_SYNC(p, 0);
    CHECK(lag_events(hook).size() == 2);
    CHECK(status_row(status_json(p), "orders")["lag_alert"]["active"] == false);
    CHECK(p.equal("orders"));
}

TEST_CASE("lag alerts: watch cycles post one lag_alert while the transaction is open and one "
          "lag_recovered after its commit - across watch processes") {
    HttpReceiver hook({200});
    Pipeline p("lag_alert_watch", "public", "replica",
               fmt::format("WEBHOOK_URL={}\nLAG_ALERT_SECONDS=2\n", hook.url()));
    seed(p);
    p.tables(R"([{"name": "orders", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);

    OpenTransaction open(p);
    rows_after(p, 101, 3);
    auto r = p.run({"watch", "--interval", "0.2", "--cycles", "4"});
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    auto events = lag_events(hook);
    REQUIRE(events.size() == 1);
    CHECK(events[0]["event"] == "lag_alert");
    CHECK(events[0]["causes"][0]["application_name"] == "lag_holder");

    // A second watch process remembers the alert: no new one.
    r = p.run({"watch", "--interval", "0.2", "--cycles", "2"});
    REQUIRE(r.exit_code == 0);
    CHECK(lag_events(hook).size() == 1);

    open.commit();
    r = p.run({"watch", "--interval", "0.2", "--cycles", "3"});
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    events = lag_events(hook);
    REQUIRE(events.size() == 2);
    CHECK(events[1]["event"] == "lag_recovered");

    r = p.run({"watch", "--interval", "0.2", "--cycles", "2"});
    REQUIRE(r.exit_code == 0);
    CHECK(lag_events(hook).size() == 2);
    CHECK(p.equal("orders"));
}

TEST_CASE("lag alerts: an entry's lag_alert_seconds beats LAG_ALERT_SECONDS - an active alert "
          "repeats after LAG_ALERT_REPEAT_SECONDS") {
    HttpReceiver hook({200});
    Pipeline p("lag_alert_override", "public", "replica",
               fmt::format("WEBHOOK_URL={}\nLAG_ALERT_SECONDS=100000\nLAG_ALERT_REPEAT_SECONDS=1\n",
                           hook.url()));
    seed(p);
    // Two entries read the same source table: only the one with its own, lower threshold
    // alerts; the other keeps the pipeline's.
    p.tables(R"([{"name": "orders", "replication_key": "updated_at", "lag_alert_seconds": 2},
                 {"name": "orders", "destination": "orders_b", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);

    OpenTransaction open(p);
    rows_after(p, 101, 3);
    REQUIRE_SYNC(p, 0);
    auto events = lag_events(hook);
    REQUIRE(events.size() == 1);
    CHECK(events[0]["table"] == "orders");
    CHECK(events[0]["threshold_seconds"] == 2.0);

    auto st = status_json(p);
    CHECK(status_row(st, "orders")["lag_alert"]["active"] == true);
    CHECK(status_row(st, "orders_b")["lag_alert"]["active"] == false);
    CHECK(status_row(st, "orders_b")["lag_alert"]["threshold_seconds"] == 100000.0);

    // Past the repeat interval the still-active alert is posted again, marked as a repeat.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    REQUIRE_SYNC(p, 0);
    events = lag_events(hook);
    REQUIRE(events.size() == 2);
    CHECK(events[1]["event"] == "lag_alert");
    CHECK(events[1]["table"] == "orders");
    CHECK(events[1]["repeat"] == true);
    CHECK(events[1]["since"] == events[0]["since"]);

    open.commit();
    REQUIRE_SYNC(p, 0);
    events = lag_events(hook);
    CHECK(count(events, "lag_alert", "orders") == 2);
    CHECK(count(events, "lag_recovered", "orders") == 1);
    CHECK(count(events, "lag_alert", "orders_b") == 0);
    CHECK(count(events, "lag_recovered", "orders_b") == 0);
    CHECK(p.equal("orders"));
    CHECK(p.equal("orders", "orders_b"));
}

TEST_CASE("lag alerts: a lag_alert the webhook refused is posted again by the next sync, then "
          "never more") {
    // The initial sync's summary, then the alert (refused), the summary, the alert again.
    HttpReceiver hook({200, 500, 200});
    Pipeline p(
        "lag_alert_refused", "public", "replica",
        fmt::format("WEBHOOK_URL={}\nWEBHOOK_ATTEMPTS=1\nLAG_ALERT_SECONDS=2\n", hook.url()));
    seed(p);
    p.tables(R"([{"name": "orders", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);

    OpenTransaction open(p);
    rows_after(p, 101, 3);
    auto r = p.sync();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("lag_alert not delivered") != std::string::npos);
    CHECK(lag_events(hook).size() == 1); // received, answered 500
    CHECK(status_row(status_json(p), "orders")["lag_alert"]["active"] == false);

    REQUIRE_SYNC(p, 0);
    CHECK(lag_events(hook).size() == 2);
    CHECK(status_row(status_json(p), "orders")["lag_alert"]["active"] == true);
    REQUIRE_SYNC(p, 0);
    auto events = lag_events(hook);
    CHECK(events.size() == 2);
    CHECK(count(events, "lag_alert", "orders") == 2);
    open.commit();
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders"));
}

TEST_CASE("lag alerts: a cdc table failing run after run alerts once with its failures as the "
          "cause - its reload recovers") {
    HttpReceiver hook({200});
    std::string slot = "pgincr_t_lag_alert_cdc";
    SlotCleanup cleanup{slot};
    Pipeline p(
        "lag_alert_cdc", "public", "replica",
        fmt::format("PGINCR_SLOT={}\nWEBHOOK_URL={}\nLAG_ALERT_SECONDS=2\n", slot, hook.url()));
    struct DropPublication {
        Pipeline &p;
        std::string name;
        ~DropPublication() {
            try {
                p.src().exec(fmt::format("DROP PUBLICATION IF EXISTS {}", name));
            } catch (...) {
            }
        }
    } publication{p, slot};
    p.src().exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    p.src().exec("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g");
    p.tables(R"([{"name": "t", "mode": "cdc"}])");
    REQUIRE_SYNC(p, 0);
    p.src().exec("INSERT INTO t VALUES (101, 'streamed')");
    REQUIRE_SYNC(p, 0);
    CHECK(lag_events(hook).empty());

    // A slot dropped by hand fails the table on every run until it is reset.
    p.src().exec(fmt::format("SELECT pg_drop_replication_slot('{}')", slot));
    p.src().exec("INSERT INTO t VALUES (102, 'waits')");
    REQUIRE_SYNC(p, 1);
    CHECK(lag_events(hook).empty()); // failing for no time yet
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    REQUIRE_SYNC(p, 1);
    REQUIRE_SYNC(p, 1);
    auto events = lag_events(hook);
    REQUIRE(events.size() == 1);
    CHECK(events[0]["event"] == "lag_alert");
    CHECK(events[0]["table"] == "t");
    CHECK(events[0]["mode"] == "cdc");
    CHECK(events[0]["lag_seconds"].get<double>() >= 2.0);
    CHECK(events[0]["rows_waiting"].is_null());
    bool failures = false;
    for (const auto &c : events[0]["causes"])
        if (c["kind"] == "failures") {
            failures = true;
            CHECK(c["failed_runs"] == 2);
            CHECK(c["last_error"].get<std::string>().find(slot) != std::string::npos);
        }
    CHECK(failures);

    REQUIRE(p.run({"reset", "t"}).exit_code == 0);
    REQUIRE_SYNC(p, 0);
    events = lag_events(hook);
    REQUIRE(events.size() == 2);
    CHECK(events[1]["event"] == "lag_recovered");
    CHECK(p.equal("t"));
}
