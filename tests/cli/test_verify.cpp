// `pgincr verify` end to end: every kind of difference planted by hand is found and
// named, --repair fixes it, equal tables exit 0 (also while the source is written to),
// and rows the entry keeps on purpose or that are still in flight are counted apart.
#include "support/pipeline.hpp"

#include <atomic>
#include <csignal>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>
#include <thread>
#include <unistd.h>

using namespace pgincr;
using namespace pgincr::test;

namespace {

// One column of each type whose text form a comparison could get wrong.
void seed_typed(Pipeline &p, int rows, const std::string &entry_extra = "") {
    p.src().exec("CREATE TYPE mood AS ENUM ('calm', 'busy')");
    p.src().exec("CREATE TABLE things (id bigint PRIMARY KEY, n int, price numeric(12,2), "
                 "label text, doc jsonb, at timestamptz, raw bytea, flag boolean, tags text[], "
                 "m mood, f float8, updated_at timestamptz NOT NULL DEFAULT now())");
    p.src().exec(fmt::format(
        "INSERT INTO things SELECT g, g, g / 7.0, 'label ' || g || E' \\\\N \\t ü', "
        "jsonb_build_object('g', g, 'a', jsonb_build_array(g, 'x')), "
        "'2025-01-01 00:00:00.000001+00'::timestamptz + g * interval '1 second', "
        "decode(lpad(to_hex(g), 8, '0') || '00ff', 'hex'), g % 2 = 0, ARRAY['a', g::text], "
        "(ARRAY['calm', 'busy']::mood[])[1 + g % 2], g / 3.0, "
        "now() - interval '1 hour' + g * interval '1 ms' "
        "FROM generate_series(1, {}) g",
        rows));
    p.tables(
        fmt::format(R"([{{"name": "things", "replication_key": "updated_at"{}}}])", entry_extra));
}

nlohmann::json verify_json(const Pipeline &p, const std::vector<std::string> &more = {},
                           int *code = nullptr) {
    std::vector<std::string> args{"verify", "--json"};
    args.insert(args.end(), more.begin(), more.end());
    auto r = p.run(args);
    INFO(r.all());
    if (code)
        *code = r.exit_code;
    return nlohmann::json::parse(r.out);
}

std::vector<std::string> samples(const nlohmann::json &kind) {
    auto v = kind["sample_keys"].get<std::vector<std::string>>();
    std::sort(v.begin(), v.end());
    return v;
}

} // namespace

TEST_CASE("verify: equal tables exit 0 - every planted difference is found - named - and "
          "repaired") {
    Pipeline p("verify_kinds");
    // With "deletes": "hard" a row only in the destination is a difference (with
    // "ignore" it would be one deleted in the source, kept on purpose).
    seed_typed(p, 3000, R"(, "deletes": "hard")");
    REQUIRE_SYNC(p, 0);
    int code = -1;
    auto equal = verify_json(p, {}, &code);
    CHECK(code == 0);
    CHECK(equal[0]["status"] == "equal");
    CHECK(equal[0]["source_rows"] == 3000);
    CHECK(equal[0]["dest_rows"] == 3000);

    // A missing row, an extra row, a changed value in each of several types, a NULL
    // where there was a value.
    p.dst().exec("DELETE FROM replica.things WHERE id = 11");
    p.dst().exec("INSERT INTO replica.things SELECT 9999, n, price, label, doc, at, raw, flag, "
                 "tags, m, f, updated_at FROM replica.things WHERE id = 12");
    p.dst().exec("UPDATE replica.things SET n = n + 1 WHERE id = 101");
    p.dst().exec("UPDATE replica.things SET price = price + 0.01 WHERE id = 202");
    p.dst().exec("UPDATE replica.things SET label = label || ' ' WHERE id = 303");
    p.dst().exec("UPDATE replica.things SET doc = doc || '{\"z\": 1}' WHERE id = 404");
    p.dst().exec("UPDATE replica.things SET at = at + interval '1 microsecond' WHERE id = 505");
    p.dst().exec("UPDATE replica.things SET raw = raw || '\\x00'::bytea WHERE id = 606");
    p.dst().exec("UPDATE replica.things SET flag = NOT flag WHERE id = 707");
    p.dst().exec("UPDATE replica.things SET tags = tags || 'b'::text WHERE id = 808");
    p.dst().exec("UPDATE replica.things SET m = 'calm' WHERE id = 911"); // 911 was busy
    p.dst().exec("UPDATE replica.things SET f = f + 1e-12 WHERE id = 1011");
    p.dst().exec("UPDATE replica.things SET label = NULL WHERE id = 2999");

    auto r = p.run({"verify"});
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("DIFFERENT") != std::string::npos);
    CHECK(r.out.find("missing in the destination: 11") != std::string::npos);
    CHECK(r.out.find("only in the destination: 9999") != std::string::npos);

    auto diff = verify_json(p, {}, &code);
    CHECK(code == 1);
    CHECK(diff[0]["status"] == "different");
    CHECK(diff[0]["missing_in_dest"]["count"] == 1);
    CHECK(diff[0]["only_in_dest"]["count"] == 1);
    CHECK(diff[0]["changed"]["count"] == 11);
    CHECK(samples(diff[0]["changed"]).size() == 10); // at most 10 named
    CHECK(diff[0]["in_flight"]["count"] == 0);

    auto repaired = verify_json(p, {"--repair"}, &code);
    CHECK(code == 0);
    CHECK(repaired[0]["status"] == "equal");
    CHECK(repaired[0]["rows_repaired"] == 13);
    CHECK(p.equal("things"));
    CHECK(verify_json(p, {}, &code)[0]["status"] == "equal");
    CHECK(code == 0);
}

TEST_CASE("verify: text and composite keys - many ranges - each difference found once") {
    Pipeline p("verify_keys");
    p.src().exec("CREATE TABLE by_code (code text PRIMARY KEY, v int, updated_at timestamptz NOT "
                 "NULL DEFAULT now() - interval '1 hour')");
    // Distinct cursors, so that only the last row sits at the mark (in flight).
    p.src().exec("INSERT INTO by_code SELECT md5(g::text), g, now() - interval '1 hour' + g * "
                 "interval '1 ms' FROM generate_series(1, 20000) g");
    p.src().exec("CREATE TABLE by_pair (region text, n int, v int, updated_at timestamptz NOT "
                 "NULL DEFAULT now() - interval '1 hour', PRIMARY KEY (region, n))");
    p.src().exec("INSERT INTO by_pair SELECT (ARRAY['eu', 'us', 'ap'])[1 + g % 3], g, g, now() - "
                 "interval '1 hour' + g * interval '1 ms' FROM generate_series(1, 20000) g");
    p.src().exec("ANALYZE by_code; ANALYZE by_pair");
    p.tables(R"([{"name": "by_code", "replication_key": "updated_at"},
                 {"name": "by_pair", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);
    p.dst().exec("ANALYZE replica.by_code; ANALYZE replica.by_pair");
    int code = -1;
    CHECK(verify_json(p, {}, &code)[0]["status"] == "equal");
    CHECK(code == 0);

    p.dst().exec("UPDATE replica.by_code SET v = -v WHERE v IN (5, 5000, 15000)");
    p.dst().exec("DELETE FROM replica.by_code WHERE v = 7777");
    p.dst().exec("UPDATE replica.by_pair SET v = -v WHERE n IN (3, 9001, 19999)");
    p.dst().exec("DELETE FROM replica.by_pair WHERE n = 12345");
    auto j = verify_json(p, {}, &code);
    CHECK(code == 1);
    CHECK(j[0]["changed"]["count"] == 3);
    CHECK(j[0]["missing_in_dest"]["count"] == 1);
    CHECK(samples(j[0]["missing_in_dest"]) ==
          std::vector<std::string>{scalar(p.src(), "SELECT md5('7777')")});
    CHECK(j[1]["changed"]["count"] == 3);
    CHECK(samples(j[1]["changed"]) ==
          std::vector<std::string>{"(eu, 3)", "(us, 19999)", "(us, 9001)"});
    CHECK(samples(j[1]["missing_in_dest"]) == std::vector<std::string>{"(eu, 12345)"});
    verify_json(p, {"--repair"}, &code);
    CHECK(code == 0);
    CHECK(p.equal("by_code"));
    CHECK(p.equal("by_pair"));
}

TEST_CASE("verify: rows at or after the mark are in flight - equal while the source is "
          "written to") {
    Pipeline p("verify_busy");
    seed_typed(p, 2000);
    REQUIRE_SYNC(p, 0);
    // Written after the sync: in flight, never a difference.
    p.src().exec("UPDATE things SET n = -n, updated_at = now() WHERE id % 100 = 0");
    p.src().exec("INSERT INTO things (id, n) VALUES (5001, 1), (5002, 2)");
    int code = -1;
    auto j = verify_json(p, {}, &code);
    CHECK(code == 0);
    CHECK(j[0]["status"] == "equal");
    CHECK(j[0]["in_flight"]["count"] == 22);

    std::atomic<bool> stop{false};
    std::atomic<int> writes{0};
    std::thread writer([&] {
        auto w = admin(pg::Side::source, p.dbs.name());
        for (int i = 0; !stop; ++i) {
            w->exec(fmt::format("UPDATE things SET n = n + 1, updated_at = now() WHERE id = {}",
                                1 + i % 2000));
            w->exec(fmt::format("INSERT INTO things (id, n) VALUES ({}, 0)", 10000 + i));
            ++writes;
        }
    });
    for (int round = 0; round < 3; ++round) {
        auto during = verify_json(p, {}, &code);
        CHECK(code == 0);
        CHECK(during[0]["status"] == "equal");
    }
    stop = true;
    writer.join();
    CHECK(writes > 0);
    REQUIRE_SYNC(p, 0);
    CHECK(verify_json(p, {}, &code)[0]["in_flight"]["count"] == 0);
    CHECK(code == 0);
}

TEST_CASE("verify: rows kept on purpose are counted apart - deletes ignore - soft - append") {
    Pipeline p("verify_kept");
    seed_typed(p, 500);
    p.src().exec("CREATE TABLE soft_things (LIKE things INCLUDING ALL)");
    p.src().exec("INSERT INTO soft_things SELECT * FROM things");
    p.src().exec("CREATE TABLE events (id bigint PRIMARY KEY, v int, updated_at timestamptz NOT "
                 "NULL)");
    p.src().exec("INSERT INTO events SELECT g, g, now() - interval '1 hour' + g * interval '1 "
                 "ms' FROM generate_series(1, 100) g");
    p.tables(R"([{"name": "things", "replication_key": "updated_at"},
                 {"name": "soft_things", "replication_key": "updated_at", "deletes": "soft"},
                 {"name": "events", "replication_key": "updated_at",
                  "mode": "incremental-append"}])");
    REQUIRE_SYNC(p, 0);
    p.src().exec("DELETE FROM things WHERE id IN (1, 2)");
    p.src().exec("DELETE FROM soft_things WHERE id IN (3, 4, 5)");
    p.src().exec("UPDATE events SET v = -v, updated_at = now() WHERE id <= 10");
    REQUIRE_SYNC(p, 0);
    int code = -1;
    auto j = verify_json(p, {}, &code);
    CHECK(code == 0);
    CHECK(j[0]["status"] == "equal");
    CHECK(j[0]["expected_in_dest"]["count"] == 2);
    CHECK(j[0]["expected_in_dest_as"] == "deleted in the source");
    CHECK(j[1]["expected_in_dest"]["count"] == 3);
    CHECK(samples(j[1]["expected_in_dest"]) == std::vector<std::string>{"3", "4", "5"});
    CHECK(j[2]["expected_in_dest"]["count"] == 10);
    CHECK(j[2]["expected_in_dest_as"] == "earlier versions");

    // --repair leaves what "deletes": "ignore" keeps, and a soft entry's extra live row
    // gets marked instead of deleted.
    p.dst().exec("INSERT INTO replica.soft_things (id, n, updated_at) VALUES (7000, 1, now() - "
                 "interval '2 hours')");
    CHECK(verify_json(p, {"soft_things"}, &code)[0]["only_in_dest"]["count"] == 1);
    CHECK(code == 1);
    verify_json(p, {"--repair"}, &code);
    CHECK(code == 0);
    CHECK(p.dst_count("things") == 500);
    CHECK(scalar(p.dst(), "SELECT _pgincr_deleted_at IS NOT NULL FROM replica.soft_things WHERE "
                          "id = 7000") == "t");
}

TEST_CASE("verify: rows with a NULL in a unique column are compared as one group") {
    Pipeline p("verify_null_keys");
    p.src().exec("CREATE TABLE tagged (id bigint NOT NULL, tag text, v int, updated_at "
                 "timestamptz NOT NULL DEFAULT now() - interval '1 hour')");
    p.src().exec("CREATE UNIQUE INDEX ON tagged (id, tag) NULLS NOT DISTINCT");
    p.src().exec("INSERT INTO tagged VALUES (1, 'a', 1), (1, NULL, 2), (2, NULL, 3), (3, 'c', 4)");
    p.tables(
        R"([{"name": "tagged", "replication_key": "updated_at", "unique_cols": ["id", "tag"]}])");
    REQUIRE_SYNC(p, 0);
    int code = -1;
    auto j = verify_json(p, {}, &code);
    CHECK(code == 0);
    CHECK(j[0]["null_key_rows"]["source"] == 2);
    CHECK(j[0]["source_rows"] == 4);
    p.dst().exec("UPDATE replica.tagged SET v = 30 WHERE id = 2");
    j = verify_json(p, {}, &code);
    CHECK(code == 1);
    CHECK(j[0]["null_key_rows"]["differ"] == true);
}

TEST_CASE("verify: holds the run lock - kill -9 before a repair commits changes nothing - a "
          "table that cannot be compared exits 1") {
    Pipeline p("verify_lock");
    seed_typed(p, 200);
    REQUIRE_SYNC(p, 0);
    p.dst().exec("UPDATE replica.things SET n = 0 WHERE id = 5");

    int fd = ::open((p.dir.path() / "sync-state" / ".pgincr.lock").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    CHECK(p.run({"verify"}).exit_code == 3);
    ::close(fd);

    auto killed = p.run({"verify", "--repair"}, {{"PGINCR_FAULT", "repair-before-commit"}});
    CHECK(killed.signal == SIGKILL);
    CHECK(scalar(p.dst(), "SELECT n FROM replica.things WHERE id = 5") == "0");
    CHECK(p.run({"verify", "--repair"}).exit_code == 0);
    CHECK(p.equal("things"));

    CHECK(p.run({"verify", "nope"}).exit_code == 2);
    p.dst().exec("DROP TABLE replica.things");
    auto gone = p.run({"verify"});
    CHECK(gone.exit_code == 1);
    CHECK(gone.all().find("the destination table \"replica\".\"things\" does not exist") !=
          std::string::npos);
}
