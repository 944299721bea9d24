#include "webhook.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>

using namespace pgincr;
using nlohmann::json;

namespace {
bool has(const std::string &text, const std::string &part) {
    if (text.find(part) != std::string::npos)
        return true;
    MESSAGE("'" << text << "' does not contain '" << part << "'");
    return false;
}

// 2023-11-14T22:13:20.123Z to 2023-11-14T22:13:24.690Z.
RunSummary run_with(std::vector<TableResult> tables) {
    RunSummary run;
    run.pipeline = "app-public";
    run.run_id = "20231114T221320Z-4f2a";
    run.started_at =
        std::chrono::system_clock::from_time_t(1700000000) + std::chrono::milliseconds(123);
    run.finished_at = run.started_at + std::chrono::milliseconds(4567);
    run.tables = std::move(tables);
    return run;
}

TableResult ok_table(const std::string &name, SyncMode mode, std::int64_t copied,
                     std::int64_t merged) {
    TableResult t;
    t.name = name;
    t.destination = name + "_copy";
    t.config_mode = "incremental-deduped";
    t.mode = mode;
    t.ok = true;
    t.rows_copied = copied;
    t.rows_merged = merged;
    t.watermark = "2023-11-14 22:00:00.5+00";
    t.lag_seconds = 12.5;
    t.duration_ms = 2000;
    return t;
}

TableResult failed_table(const std::string &name, const std::string &error) {
    TableResult t;
    t.name = name;
    t.destination = name;
    t.config_mode = "incremental-append";
    t.mode = SyncMode::incremental;
    t.ok = false;
    t.duration_ms = 15;
    t.error = error;
    return t;
}

RunSummary mixed_run() {
    return run_with({ok_table("orders", SyncMode::initial, 1000, 0),
                     ok_table("customers", SyncMode::incremental, 20, 20),
                     failed_table("events", "relation \"events\" does not exist\nHINT:  check")});
}
} // namespace

TEST_CASE("webhook: payload of a run with an initial - an incremental and a failed table") {
    const json j = json::parse(webhook::payload(mixed_run(), "1.2.3"));

    CHECK(j.at("event") == "sync");
    CHECK(j.at("pipeline") == "app-public");
    CHECK(j.at("status") == "partial");
    CHECK(j.at("run_id") == "20231114T221320Z-4f2a");
    CHECK(j.at("started_at") == "2023-11-14T22:13:20.123Z");
    CHECK(j.at("finished_at") == "2023-11-14T22:13:24.690Z");
    CHECK(j.at("duration_ms").is_number_integer());
    CHECK(j.at("duration_ms") == 4567);
    CHECK(j.at("interrupted") == false);
    CHECK(j.at("pgincr_version") == "1.2.3");

    const json &tables = j.at("tables");
    REQUIRE(tables.is_array());
    REQUIRE(tables.size() == 3);

    const json &initial = tables[0];
    CHECK(initial.at("name") == "orders");
    CHECK(initial.at("destination") == "orders_copy");
    CHECK(initial.at("mode") == "initial");
    CHECK(initial.at("config_mode") == "incremental-deduped");
    CHECK(initial.at("status") == "ok");
    CHECK(initial.at("rows_copied").is_number_integer());
    CHECK(initial.at("rows_copied") == 1000);
    CHECK(initial.at("rows_merged") == 0);
    CHECK(initial.at("watermark") == "2023-11-14 22:00:00.5+00");
    CHECK(initial.at("lag_seconds").is_number());
    CHECK(initial.at("lag_seconds") == doctest::Approx(12.5));
    CHECK(initial.at("duration_ms") == 2000);
    CHECK(initial.at("error").is_null());

    const json &incremental = tables[1];
    CHECK(incremental.at("mode") == "incremental");
    CHECK(incremental.at("status") == "ok");
    CHECK(incremental.at("rows_copied") == 20);
    CHECK(incremental.at("rows_merged") == 20);

    const json &failed = tables[2];
    CHECK(failed.at("name") == "events");
    CHECK(failed.at("mode") == "incremental");
    CHECK(failed.at("config_mode") == "incremental-append");
    CHECK(failed.at("status") == "failed");
    CHECK(failed.at("watermark").is_null());
    CHECK(failed.at("lag_seconds").is_null());
    // The table entry keeps the error whole; only the message flattens it.
    CHECK(failed.at("error") == "relation \"events\" does not exist\nHINT:  check");

    const std::string message = j.at("message");
    CHECK(message.find('\n') == std::string::npos);
    CHECK(has(message, "Pipeline app-public partially failed. Summary: 3 tables, 2 ok, 1 failed"));
    CHECK(has(message, "(events: relation \"events\" does not exist HINT: check)"));
    CHECK(has(message, "1020 rows copied, 20 merged"));
    CHECK(has(message, "took 4.6 s."));
}

TEST_CASE("webhook: rows_deleted per table - and in the message only when something was deleted") {
    auto kept = ok_table("orders", SyncMode::incremental, 5, 5);
    auto pruned = ok_table("customers", SyncMode::incremental, 1, 0);
    pruned.rows_deleted = 7;
    const json j = json::parse(webhook::payload(run_with({kept, pruned}), "x"));
    CHECK(j.at("tables")[0].at("rows_deleted") == 0);
    CHECK(j.at("tables")[1].at("rows_deleted") == 7);
    CHECK(has(j.at("message"), "6 rows copied, 5 merged, 7 deleted; took"));
    const json none = json::parse(webhook::payload(run_with({kept}), "x"));
    CHECK(has(none.at("message"), "5 rows copied, 5 merged; took"));
}

TEST_CASE("webhook: status is succeeded when every table is ok - failed when none is") {
    SUBCASE("succeeded") {
        auto run = run_with(
            {ok_table("a", SyncMode::incremental, 1, 1), ok_table("b", SyncMode::skipped, 0, 0)});
        const json j = json::parse(webhook::payload(run, "x"));
        CHECK(j.at("status") == "succeeded");
        CHECK(has(j.at("message"), "Pipeline app-public succeeded. Summary: 2 tables, 2 ok, "
                                   "0 failed; 1 rows copied, 1 merged"));
        CHECK(j.at("tables")[1].at("mode") == "skipped");
    }
    SUBCASE("failed") {
        auto run = run_with({failed_table("a", "boom"), failed_table("b", "bang")});
        const json j = json::parse(webhook::payload(run, "x"));
        CHECK(j.at("status") == "failed");
        CHECK(has(j.at("message"), "Pipeline app-public failed. Summary: 2 tables, 0 ok, "
                                   "2 failed (a: boom; b: bang)"));
    }
    SUBCASE("interrupted") {
        auto run = run_with({ok_table("a", SyncMode::incremental, 1, 1)});
        run.interrupted = true;
        const json j = json::parse(webhook::payload(run, "x"));
        CHECK(j.at("status") == "partial");
        CHECK(j.at("interrupted") == true);
        CHECK(has(j.at("message"), "Pipeline app-public partially failed (interrupted)."));
    }
    SUBCASE("no tables") {
        const json j = json::parse(webhook::payload(run_with({}), "x"));
        CHECK(j.at("status") == "succeeded");
        CHECK(j.at("tables").is_array());
        CHECK(j.at("tables").empty());
        CHECK(has(j.at("message"), "Summary: 0 tables, 0 ok, 0 failed"));
    }
}

TEST_CASE("webhook: the message stays one short line whatever the errors hold") {
    std::vector<TableResult> tables;
    const std::string long_error = "line one\r\n\tline two " + std::string(500, 'x');
    for (int i = 0; i < 5; ++i)
        tables.push_back(failed_table("t" + std::to_string(i), long_error));
    // Invalid UTF-8, as a server message in LATIN1 would be.
    tables.push_back(failed_table("latin1", "caf\xe9 \xff"));
    auto run = run_with(tables);
    run.pipeline = "multi\nline";

    std::string body;
    REQUIRE_NOTHROW(body = webhook::payload(run, "x"));
    const json j = json::parse(body);
    const std::string message = j.at("message");
    CHECK(message.find('\n') == std::string::npos);
    CHECK(message.find('\r') == std::string::npos);
    CHECK(message.find('\t') == std::string::npos);
    CHECK(has(message, "Pipeline multi line failed."));
    CHECK(has(message, "(t0: line one line two xxx"));
    CHECK(has(message, "...; t1:"));
    CHECK(has(message, "; and 3 more)"));
    CHECK(message.size() < 800);
    CHECK(j.at("tables")[0].at("error") == long_error);
    CHECK(j.at("tables")[5].at("error") == "caf\xef\xbf\xbd \xef\xbf\xbd");
}

TEST_CASE("webhook: check payload") {
    const json j = json::parse(webhook::check_payload("app-public", "1.2.3"));
    CHECK(j.at("event") == "check");
    CHECK(j.at("pipeline") == "app-public");
    CHECK(j.at("message") == "pgincr check: webhook reachable");
    CHECK(j.at("pgincr_version") == "1.2.3");
    const std::string sent_at = j.at("sent_at");
    CHECK(sent_at.size() == std::string("2026-01-01T00:00:00.000Z").size());
    CHECK(sent_at.back() == 'Z');
}

TEST_CASE("webhook: redact_url removes credentials and tokens") {
    using webhook::redact_url;
    CHECK(redact_url("https://user:pa55@hooks.example.com/x") == "https://hooks.example.com/x");
    CHECK(redact_url("https://hooks.example.com/x?token=abc") ==
          "https://hooks.example.com/x?token=***");
    CHECK(redact_url("https://u:p@hooks.example.com:8443/a/b?token=abc&channel=ops#frag") ==
          "https://hooks.example.com:8443/a/b?token=***&channel=***");
    // A bare parameter may be the token itself.
    CHECK(redact_url("https://hooks.example.com/x?abc123") == "https://hooks.example.com/x?***");
    // An '@' after the host is not userinfo.
    CHECK(redact_url("https://hooks.example.com/x?email=a@b.c") ==
          "https://hooks.example.com/x?email=***");
    CHECK(redact_url("https://token@hooks.example.com") == "https://hooks.example.com");
    // Tokens in the path, as Slack and Discord put them.
    CHECK(redact_url("https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/"
                     "abcdefGHIJKL1234mnopQRST") ==
          "https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/***");
    CHECK(redact_url("https://discord.com/api/webhooks/123456789012345678/"
                     "Xy9_abcDEF-ghiJKL0123456789mnopQRSTuvwx") ==
          "https://discord.com/api/webhooks/123456789012345678/***");
    CHECK(redact_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook");
    CHECK(redact_url("") == "");
}

TEST_CASE("webhook: signature is sha256= and the HMAC of timestamp.body") {
    // printf '%s' '1700000000.{"event":"sync"}' | openssl dgst -sha256 -hmac 's3cret'
    CHECK(webhook::signature("s3cret", "1700000000", R"({"event":"sync"})") ==
          "sha256=6b69ecdcdbc74d0a7e4c536b54f479b8cd0a0c88c9328b7da898ab76d9daab10");
}

TEST_CASE("webhook: retry policy defaults") {
    webhook::RetryPolicy p;
    CHECK(p.first_backoff == std::chrono::seconds(1));
    CHECK(p.budget == std::chrono::seconds(60));
}

TEST_CASE("webhook: a run with cdc entries carries the slot's report - others carry none") {
    auto streamed = ok_table("orders", SyncMode::cdc, 0, 12);
    auto run = run_with({streamed});
    SlotReport slot;
    slot.name = "pgincr_app_public";
    slot.exists = true;
    slot.wal_status = "reserved";
    slot.retained_bytes = 1048576;
    slot.behind_bytes = 0;
    slot.behind_seconds = 0.5;
    slot.confirmed_lsn = "0/1A2B3C4";
    run.slot = slot;
    const json j = json::parse(webhook::payload(run, "x"));
    CHECK(j.at("tables")[0].at("mode") == "cdc");
    CHECK(j.at("slot").at("name") == "pgincr_app_public");
    CHECK(j.at("slot").at("wal_status") == "reserved");
    CHECK(j.at("slot").at("retained_bytes") == 1048576);
    CHECK(j.at("slot").at("behind_bytes") == 0);
    CHECK(j.at("slot").at("behind_seconds") == 0.5);
    CHECK(j.at("slot").at("confirmed_lsn") == "0/1A2B3C4");
    CHECK_FALSE(json::parse(webhook::payload(run_with({streamed}), "x")).contains("slot"));
}
