// Streaming: pgincr's memory does not grow with the table. Each ctest case runs in its
// own process, so RUSAGE_CHILDREN's peak covers exactly the pgincr runs (and their
// pg_dump) of this test.
#include "support/pipeline.hpp"

#include <doctest/doctest.h>
#include <sys/resource.h>

using namespace pgincr;
using namespace pgincr::test;

namespace {

long peak_child_rss_kib() {
    rusage usage{};
    getrusage(RUSAGE_CHILDREN, &usage);
    return usage.ru_maxrss;
}

} // namespace

TEST_CASE("memory: a 200 MB table loads by COPY and by pg_dump and merges with a flat footprint") {
    Pipeline p("memory_flat");
    // 100,000 rows of 2 kB: about 200 MB on the wire, a few MB on disk (compressed).
    p.src().exec("CREATE TABLE wide (id int PRIMARY KEY, body text, "
                 "updated_at timestamptz NOT NULL DEFAULT '2025-01-01')");
    p.src().exec("INSERT INTO wide (id, body) SELECT g, repeat(md5(g::text), 64) "
                 "FROM generate_series(1, 100000) g");
    p.tables(R"([{"name": "wide", "replication_key": "updated_at"}])");

    auto initial = p.sync();
    INFO(initial.all());
    REQUIRE(initial.exit_code == 0);
    auto via_dump = p.run({"reset", "wide"});
    REQUIRE(via_dump.exit_code == 0);
    via_dump = p.sync({{"PGINCR_LOAD_VIA", "pg_dump"}});
    INFO(via_dump.all());
    REQUIRE(via_dump.exit_code == 0);
    // Every row changes: the whole table goes through the staging table and the merge.
    p.src().exec("UPDATE wide SET body = repeat(md5((id + 1)::text), 64), updated_at = "
                 "'2026-01-01'");
    auto incremental = p.sync();
    INFO(incremental.all());
    REQUIRE(incremental.exit_code == 0);
    CHECK(p.equal("wide"));

    long peak = peak_child_rss_kib();
    MESSAGE("peak RSS of pgincr and pg_dump: ", peak, " KiB");
    CHECK(peak > 0);
    CHECK(peak < 64 * 1024); // a fraction of the 200 MB that went through
}

TEST_CASE("memory: a 1,000,000-row source transaction streams in cdc mode with a flat footprint, "
          "and the stream stays alive through its long apply") {
    std::string slot = "pgincr_t_memory_cdc";
    SlotCleanup cleanup{slot};
    Pipeline p("memory_cdc", "public", "replica", "PGINCR_SLOT=" + slot + "\n");
    p.src().exec("CREATE TABLE big (id int PRIMARY KEY, v int, note text)");
    p.tables(R"([{"name": "big", "mode": "cdc"}])");
    REQUIRE_SYNC(p, 0);
    p.src().exec("INSERT INTO big SELECT g, g, md5(g::text) FROM generate_series(1, 1000000) g");

    // The apply of one million rows takes longer than this: only status updates sent
    // while it runs keep the server from ending the session.
    auto admin_conn = admin(pg::Side::source);
    struct Restore {
        pg::Connection &conn;
        ~Restore() {
            conn.exec("ALTER SYSTEM RESET wal_sender_timeout");
            conn.exec("SELECT pg_reload_conf()");
        }
    } restore{*admin_conn};
    admin_conn->exec("ALTER SYSTEM SET wal_sender_timeout = '2s'");
    admin_conn->exec("SELECT pg_reload_conf()");

    auto r = p.sync();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(r.all().find("1000000 changes applied") != std::string::npos);
    CHECK(p.equal("big"));
    long peak = peak_child_rss_kib();
    MESSAGE("peak RSS of pgincr streaming a 1,000,000-row transaction: ", peak, " KiB");
    CHECK(peak < 64 * 1024);
    p.src().exec("DROP PUBLICATION IF EXISTS " + slot);
}
