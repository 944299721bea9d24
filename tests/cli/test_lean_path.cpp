// The per-run path of `pgincr sync` (issue 17): one session per side, the run lock's
// session doing the destination's work, the horizon read once per table's snapshot; and
// the merge that skips its dedup when the source's unique index makes the staged rows
// unique.
#include "support/pause.hpp"
#include "support/pipeline.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <future>

using namespace pgincr;
using namespace pgincr::test;

namespace {

int count_of(const std::string &text, const std::string &needle) {
    int n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        ++n;
    return n;
}

void seed(Pipeline &p, const std::string &table, int rows) {
    p.src().exec(fmt::format("CREATE TABLE {} (id bigint PRIMARY KEY, v int NOT NULL, "
                             "updated_at timestamptz NOT NULL DEFAULT now())",
                             table));
    p.src().exec(fmt::format("INSERT INTO {} (id, v, updated_at) SELECT g, g, '2025-01-01'::"
                             "timestamptz + g * interval '1 minute' FROM generate_series(1, {}) g",
                             table, rows));
}

const char *three_tables =
    R"([{"name": "a", "replication_key": "updated_at", "unique_cols": ["id"]},
        {"name": "b", "replication_key": "updated_at", "unique_cols": ["id"]},
        {"name": "c", "replication_key": "updated_at", "unique_cols": ["id"]}])";

} // namespace

TEST_CASE("per-run path: one session per side - the lock's session does the destination's work "
          "- the horizon is read once per table") {
    Pipeline p("lean_sessions");
    for (const char *t : {"a", "b", "c"})
        seed(p, t, 100);
    p.tables(three_tables);
    REQUIRE_SYNC(p, 0);
    p.src().exec("UPDATE b SET v = -v, updated_at = now() WHERE id <= 10");

    std::string on = fmt::format("FROM pg_stat_activity WHERE application_name = 'pgincr' AND "
                                 "datname = '{}'",
                                 p.dbs.name());
    std::future<RunResult> run;
    Pause pause(p.dir, "after-table");
    run = std::async(std::launch::async, [&] { return p.run({"sync", "-v"}, pause.env()); });
    REQUIRE(pause.reached());
    // After the first table: one pgincr session on each server, and the destination's
    // is the one holding the run lock.
    CHECK(scalar(p.src(), "SELECT count(*) " + on) == "1");
    CHECK(scalar(p.dst(), "SELECT count(*) " + on) == "1");
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = "
                          "l.pid WHERE l.locktype = 'advisory' AND l.granted AND "
                          "a.application_name = 'pgincr' AND a.datname = '" +
                              p.dbs.name() + "'") == "1");
    pause.go();
    auto r = run.get();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(count_of(r.err, "[dest] connected to") == 1);
    CHECK(count_of(r.err, "[source] connected to") == 1);
    // Three tables, three snapshots, a horizon for each (read, or reused while younger
    // than a second: watermark::HorizonReader), and none of its own for the warnings.
    CHECK(count_of(r.err, "late-commit horizon") == 3);
    CHECK(p.state("b")->last_sync->rows_merged == 10);
    for (const char *t : {"a", "b", "c"})
        CHECK(p.equal(t));
}

TEST_CASE("per-run path: a statement that fails on the lock's session keeps the lock - the next "
          "table syncs and the run exits 1, not 3") {
    Pipeline p("lean_fail_keeps_lock");
    for (const char *t : {"a", "b", "c"})
        seed(p, t, 100);
    p.tables(three_tables);
    REQUIRE_SYNC(p, 0);
    // A constraint added by hand in the destination refuses a's next merge there.
    p.dst().exec("ALTER TABLE replica.a ADD CONSTRAINT v_positive CHECK (v > 0)");
    for (const char *t : {"a", "b", "c"})
        p.src().exec(fmt::format("UPDATE {} SET v = -v, updated_at = now() WHERE id <= 10", t));
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.all().find("v_positive") != std::string::npos);
    CHECK(r.all().find("lost the run lock") == std::string::npos);
    CHECK(p.state("a")->last_sync->result == "failed");
    CHECK(p.state("b")->last_sync->rows_merged == 10);
    CHECK(p.equal("b"));
    CHECK(p.equal("c"));
    p.dst().exec("ALTER TABLE replica.a DROP CONSTRAINT v_positive");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("a"));
}

TEST_CASE("merge: rows unique in the source skip the dedup - unique_cols without a unique index "
          "or nullable still keep the newest row per key") {
    Pipeline p("lean_unique_rows");
    seed(p, "pk", 200);
    // unique_cols with no unique index behind them: one read may hold a key twice.
    p.src().exec("CREATE TABLE dup (k int NOT NULL, v int NOT NULL, updated_at timestamptz NOT "
                 "NULL)");
    p.src().exec("INSERT INTO dup SELECT g, g, '2025-01-01'::timestamptz + g * interval '1 "
                 "minute' FROM generate_series(1, 50) g");
    // A unique index on a nullable column: NULLs may repeat in the source, and the
    // destination's NULLS NOT DISTINCT index takes them as one key.
    p.src().exec("CREATE TABLE nul (k int, v int NOT NULL, updated_at timestamptz NOT NULL)");
    p.src().exec("CREATE UNIQUE INDEX ON nul (k)");
    p.src().exec("INSERT INTO nul VALUES (1, 1, '2025-01-01'), (NULL, 2, '2025-01-02')");
    p.tables(R"([{"name": "pk", "replication_key": "updated_at", "unique_cols": ["id"]},
                 {"name": "dup", "replication_key": "updated_at", "unique_cols": ["k"]},
                 {"name": "nul", "replication_key": "updated_at", "unique_cols": ["k"]}])");
    REQUIRE_SYNC(p, 0);
    p.src().exec("UPDATE pk SET v = -v, updated_at = now() WHERE id % 4 = 0");
    p.src().exec("INSERT INTO pk (id, v) SELECT g, g FROM generate_series(201, 220) g");
    // Two new versions of each of the keys 1..10 in one read.
    p.src().exec("INSERT INTO dup SELECT g % 10 + 1, -g, now() + g * interval '1 second' FROM "
                 "generate_series(1, 20) g");
    p.src().exec("INSERT INTO nul VALUES (NULL, 4, now()), (NULL, 5, now() + interval '1 second')");
    auto r = p.run({"sync", "-v"});
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(count_of(r.err, "[pk] [dest] merge: rows unique in the source") == 1);
    CHECK(count_of(r.err, "[dup] [dest] merge: newest row per key") == 1);
    CHECK(count_of(r.err, "[nul] [dest] merge: newest row per key") == 1);
    CHECK(p.state("pk")->last_sync->rows_merged == 70);
    CHECK(p.equal("pk"));
    auto newest = [&](const std::string &t) {
        return digest(p.src(), fmt::format("(SELECT DISTINCT ON (k) * FROM {} ORDER BY k, "
                                           "updated_at DESC)",
                                           p.src_rel(t)));
    };
    CHECK(newest("dup") == digest(p.dst(), "replica.dup"));
    CHECK(newest("nul") == digest(p.dst(), "replica.nul"));
    CHECK(scalar(p.dst(), "SELECT v FROM replica.nul WHERE k IS NULL") == "5");
}

TEST_CASE("per-run path: a cdc sync with nothing pending starts no stream and leaves the slot "
          "where it was - a change after it still arrives") {
    std::string slot = "pgincr_t_lean_cdc_noop";
    SlotCleanup cleanup{slot};
    Pipeline p("lean_cdc_noop", "public", "replica", fmt::format("PGINCR_SLOT={}\n", slot));
    seed(p, "a", 100);
    seed(p, "other", 10); // not in the pipeline: its writes are WAL of no interest to it
    p.tables(R"([{"name": "a", "mode": "cdc"}])");
    REQUIRE_SYNC(p, 0);
    auto confirmed = [&] {
        return scalar(p.src(), fmt::format("SELECT confirmed_flush_lsn FROM pg_replication_slots "
                                           "WHERE slot_name = '{}'",
                                           slot));
    };
    auto position = [&] {
        return scalar(p.dst(), "SELECT lsn FROM replica._pgincr_tables WHERE destination = 'a'");
    };
    // WAL of another table only: streamed, nothing applied, and the slot confirmed past
    // the WAL end the sync started at.
    p.src().exec("UPDATE other SET v = v + 1");
    auto wal_end = scalar(p.src(), "SELECT pg_current_wal_lsn()");
    auto r = p.sync();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(scalar(p.src(),
                 fmt::format("SELECT '{}'::pg_lsn >= '{}'::pg_lsn", confirmed(), wal_end)) == "t");
    CHECK(position() == confirmed());
    // With nothing written since (the server itself may write a little WAL now and
    // then: a few tries), the next sync sees the slot at the WAL end and streams nothing.
    bool skipped = false;
    for (int i = 0; i < 10 && !skipped; ++i) {
        auto before = confirmed();
        auto s = p.sync();
        INFO(s.all());
        REQUIRE(s.exit_code == 0);
        skipped = s.err.find("nothing to apply, confirmed up to") != std::string::npos;
        if (skipped) {
            CHECK(confirmed() == before);
            CHECK(position() == before);
        }
    }
    CHECK(skipped);
    p.src().exec("UPDATE a SET v = -v WHERE id <= 5");
    p.src().exec("DELETE FROM a WHERE id = 100");
    r = p.sync();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("nothing to apply") == std::string::npos);
    CHECK(p.equal("a"));
}

TEST_CASE("cdc: a batch of inserts and updates of distinct keys goes in as staged - a key twice, "
          "a delete or an unchanged TOASTed value go the general way - every batch ends equal") {
    std::string slot = "pgincr_t_lean_cdc_direct";
    SlotCleanup cleanup{slot};
    Pipeline p("lean_cdc_direct", "public", "replica", fmt::format("PGINCR_SLOT={}\n", slot));
    p.src().exec("CREATE TABLE a (id bigint PRIMARY KEY, v int NOT NULL, doc text)");
    // Rows 1-10 carry a TOASTed value (stored out of line, uncompressed).
    p.src().exec("ALTER TABLE a ALTER COLUMN doc SET STORAGE EXTERNAL");
    p.src().exec("INSERT INTO a SELECT g, g, CASE WHEN g <= 10 THEN repeat(md5(g::text), 400) "
                 "ELSE 'small ' || g END FROM generate_series(1, 100) g");
    p.tables(R"([{"name": "a", "mode": "cdc"}])");
    REQUIRE_SYNC(p, 0);
    auto sync = [&](const char *how) {
        auto r = p.run({"sync", "-v"});
        INFO(r.all());
        REQUIRE(r.exit_code == 0);
        CHECK(r.err.find(how) != std::string::npos);
        CHECK(p.equal("a"));
    };
    const char *direct = "inserted as staged";
    const char *general = "applied by key and stream order";
    p.src().exec("UPDATE a SET v = v + 1000 WHERE id BETWEEN 11 AND 40");
    p.src().exec("INSERT INTO a SELECT g, g, 'new' FROM generate_series(101, 110) g");
    sync(direct);
    p.src().exec("UPDATE a SET v = v + 1 WHERE id = 50");
    p.src().exec("UPDATE a SET v = v + 1 WHERE id = 50");
    sync(general);
    // doc is not changed, so pgoutput sends it as an unchanged TOASTed value.
    p.src().exec("UPDATE a SET v = -v WHERE id <= 5");
    sync(general);
    CHECK(scalar(p.dst(), "SELECT length(doc) FROM replica.a WHERE id = 3") == "12800");
    p.src().exec("DELETE FROM a WHERE id = 60");
    p.src().exec("UPDATE a SET v = 0 WHERE id = 61");
    sync(general);
    p.src().exec("UPDATE a SET v = 7 WHERE id BETWEEN 62 AND 70");
    sync(direct);
}
