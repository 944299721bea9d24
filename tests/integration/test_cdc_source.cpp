// cdc/source_setup against the real servers: what the cdc mode needs from the source
// (wal_level, a role that may replicate, a replica identity carrying the unique
// columns) is checked with the fix in each message, and a slot's state is read.
#include "cdc/source_setup.hpp"
#include "pg/replication.hpp"
#include "support/servers.hpp"

#include <doctest/doctest.h>

using namespace pgincr;
using namespace pgincr::test;

namespace {
bool has(const std::string &text, const std::string &part) {
    return text.find(part) != std::string::npos;
}
} // namespace

TEST_CASE("cdc source: wal_level and the replication privilege - each problem names its fix") {
    TestDatabases dbs("cdc_source_server");
    pg::Connection src(dbs.source_info());
    CHECK(cdc::source_problems(src, "postgres").empty());
    // The destination server runs with wal_level = replica.
    pg::Connection not_logical(dbs.dest_info());
    auto p = cdc::source_problems(not_logical, "postgres");
    REQUIRE(p.size() == 1);
    CHECK(has(p[0], "wal_level = replica"));
    CHECK(has(p[0], "ALTER SYSTEM SET wal_level = logical"));

    dbs.src().exec("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                   "'pgincr_no_repl') THEN CREATE ROLE pgincr_no_repl LOGIN PASSWORD 'x'; END "
                   "IF; END $$");
    auto info = dbs.source_info();
    info.user = "pgincr_no_repl";
    info.password = "x";
    pg::Connection plain(info);
    p = cdc::source_problems(plain, "pgincr_no_repl");
    REQUIRE(p.size() == 1);
    CHECK(has(p[0], "ALTER ROLE \"pgincr_no_repl\" REPLICATION"));
}

TEST_CASE("cdc source: the replica identity must carry the unique columns") {
    TestDatabases dbs("cdc_source_identity");
    dbs.src().exec("CREATE TABLE keyed (region text, n int, v int, PRIMARY KEY (region, n))");
    dbs.src().exec("CREATE TABLE loose (id int NOT NULL, v int)");
    dbs.src().exec("CREATE UNIQUE INDEX loose_id ON loose (id)");
    pg::Connection src(dbs.source_info());
    CHECK(cdc::replica_identity_problem(src, "public", "keyed", {"region", "n"}).empty());
    auto wrong = cdc::replica_identity_problem(src, "public", "keyed", {"n"});
    CHECK(has(wrong, "a replica identity on (region, n)"));
    auto none = cdc::replica_identity_problem(src, "public", "loose", {"id"});
    CHECK(has(none, "no primary key"));
    CHECK(has(none, "ALTER TABLE \"public\".\"loose\" REPLICA IDENTITY USING INDEX"));
    dbs.src().exec("ALTER TABLE loose REPLICA IDENTITY USING INDEX loose_id");
    CHECK(cdc::replica_identity_problem(src, "public", "loose", {"id"}).empty());
    dbs.src().exec("ALTER TABLE keyed REPLICA IDENTITY NOTHING");
    CHECK(has(cdc::replica_identity_problem(src, "public", "keyed", {"region", "n"}),
              "REPLICA IDENTITY NOTHING"));
    dbs.src().exec("ALTER TABLE keyed REPLICA IDENTITY FULL");
    CHECK(cdc::replica_identity_problem(src, "public", "keyed", {"n"}).empty());
}

TEST_CASE("cdc source: a slot's state - WAL it keeps - and the unbounded-WAL warning") {
    TestDatabases dbs("cdc_source_slot");
    SlotCleanup guard{"cdc_source_slot"};
    pg::Connection src(dbs.source_info());
    CHECK_FALSE(cdc::slot_status(src, "cdc_source_slot").exists);
    auto info = dbs.source_info();
    info.replication = true;
    pg::Connection walsender(info);
    pg::create_logical_slot(walsender, "cdc_source_slot");
    dbs.src().exec("CREATE TABLE filler AS SELECT g FROM generate_series(1, 10000) g");
    auto s = cdc::slot_status(src, "cdc_source_slot");
    CHECK(s.exists);
    CHECK(s.plugin == "pgoutput");
    CHECK_FALSE(s.lost());
    REQUIRE(s.wal_status);
    CHECK(*s.wal_status == "reserved");
    REQUIRE(s.retained_bytes);
    CHECK(*s.retained_bytes > 0); // the table written after the slot
    // The test servers leave max_slot_wal_keep_size at its default, -1.
    auto warning = cdc::unbounded_slot_warning(src);
    REQUIRE(warning);
    CHECK(has(*warning, "max_slot_wal_keep_size"));
    pg::drop_slot(walsender, "cdc_source_slot");
    CHECK_FALSE(cdc::slot_status(src, "cdc_source_slot").exists);
}
