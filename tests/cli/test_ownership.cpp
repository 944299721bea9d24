// The destination belongs to its users: pgincr replaces only the tables it manages.
#include "support/pipeline.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <fmt/format.h>

using namespace pgincr;
using namespace pgincr::test;

namespace {

void seed(pg::Connection &src, const std::string &table) {
    src.exec(fmt::format("CREATE TABLE {} (id int PRIMARY KEY, v text, "
                         "updated_at timestamptz NOT NULL DEFAULT now())",
                         table));
    src.exec(fmt::format("INSERT INTO {} (id, v) SELECT g, 'v' || g FROM generate_series(1, 100) g",
                         table));
}

bool has(const std::string &text, const std::string &part) {
    if (text.find(part) != std::string::npos)
        return true;
    MESSAGE("output does not contain '" << part << "'");
    return false;
}

} // namespace

TEST_CASE("ownership: an existing destination table pgincr did not create is left untouched - "
          "its entry fails, the others sync, and sync --replace hands it over") {
    Pipeline p("own_table");
    seed(p.src(), "t");
    seed(p.src(), "other");
    p.tables(R"([{"name": "t", "replication_key": "updated_at"},
                 {"name": "other", "replication_key": "updated_at"}])");
    p.dst().exec("CREATE SCHEMA replica");
    p.dst().exec("CREATE TABLE replica.t (note text)");
    p.dst().exec("INSERT INTO replica.t VALUES ('the analyst''s own data')");

    auto check = p.run({"check"});
    INFO(check.all());
    CHECK(check.exit_code == 1);
    CHECK(has(check.all(), "\"replica\".\"t\" already exists and pgincr does not manage it"));

    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(has(r.all(), "\"replica\".\"t\" already exists and pgincr does not manage it"));
    CHECK(has(r.all(), "pgincr sync --replace t"));
    CHECK(scalar(p.dst(), "SELECT string_agg(note, ',') FROM replica.t") ==
          "the analyst's own data");
    CHECK_FALSE(p.state("t"));
    CHECK(p.state("other")->last_sync->result == "ok");
    CHECK(p.equal("other"));

    // --replace names a table of this run, or nothing runs.
    CHECK(p.run({"sync", "--replace", "nosuch"}).exit_code == 2);
    auto replaced = p.run({"sync", "--replace", "t"});
    INFO(replaced.all());
    REQUIRE(replaced.exit_code == 0);
    CHECK(p.equal("t"));
    CHECK(scalar(p.dst(), "SELECT string_agg(destination, ',' ORDER BY destination) FROM "
                          "replica._pgincr_tables") == "other,t");

    // Managed: a lost sync-state/ goes on from the destination's progress row.
    std::filesystem::remove_all(p.dir.path() / "sync-state");
    p.src().exec("UPDATE t SET v = 'changed', updated_at = now() WHERE id <= 5");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("t")->last_sync->mode == "incremental");
    CHECK(p.equal("t"));
    CHECK(p.run({"check"}).exit_code == 0);
}

TEST_CASE("ownership: an existing <table>_stg pgincr did not create is left untouched") {
    Pipeline p("own_stg");
    seed(p.src(), "t");
    p.tables(R"([{"name": "t", "replication_key": "updated_at"}])");
    p.dst().exec("CREATE SCHEMA replica");
    p.dst().exec("CREATE TABLE replica.t_stg (note text)");
    p.dst().exec("INSERT INTO replica.t_stg VALUES ('keep me')");
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(has(r.all(), "\"replica\".\"t_stg\" already exists and pgincr does not manage it"));
    CHECK(scalar(p.dst(), "SELECT note FROM replica.t_stg") == "keep me");
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'replica' AND "
                          "tablename = 't'") == "0");
}

namespace {

// What incremental-replication left behind for `table`: a key-less copy and its cursor.
void old_tool_copy(Pipeline &p, const std::string &table) {
    p.dst().exec("CREATE SCHEMA IF NOT EXISTS replica");
    p.dst().exec(fmt::format("CREATE TABLE replica.{} (id integer, v text, updated_at timestamp "
                             "with time zone)",
                             table));
    p.dst().exec(fmt::format("INSERT INTO replica.{} SELECT id, v, updated_at FROM (VALUES (1, "
                             "'v1', '2025-01-01 00:01:00+00'::timestamptz)) x(id, v, updated_at)",
                             table));
}

} // namespace

TEST_CASE("ownership: the old tool's cursor is taken over only by the entry named like it - "
          "another entry reading the same source does not adopt a user's table") {
    Pipeline p("own_legacy_dest");
    p.src().exec("CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL)");
    p.src().exec("INSERT INTO t SELECT g, 'v' || g, '2025-01-01'::timestamptz + g * interval "
                 "'1 minute' FROM generate_series(1, 100) g");
    old_tool_copy(p, "t");
    p.dst().exec("CREATE TABLE replica.t_eu (id integer, v text, updated_at timestamptz)");
    p.dst().exec("INSERT INTO replica.t_eu VALUES (42, 'the user''s row', now())");
    p.dir.write("sync-state/t.txt", "2025-01-01T00:01:00.001Z\n");
    p.tables(R"([{"name": "t", "replication_key": "updated_at"},
                 {"name": "t", "destination": "t_eu", "replication_key": "updated_at"}])");
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(p.state("t")->last_sync->mode == "incremental");
    CHECK(has(r.all(), "\"replica\".\"t_eu\" already exists and pgincr does not manage it"));
    CHECK(scalar(p.dst(), "SELECT string_agg(v, ',') FROM replica.t_eu") == "the user's row");
    CHECK(p.equal("t"));
}

TEST_CASE("ownership: a taken-over table's own index is not kept as a user's index when a "
          "reload changes the unique index (deduped to append)") {
    Pipeline p("own_legacy_index");
    p.src().exec("CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL)");
    p.src().exec("INSERT INTO t SELECT g, 'v' || g, '2025-01-01'::timestamptz + g * interval "
                 "'1 minute' FROM generate_series(1, 100) g");
    old_tool_copy(p, "t");
    p.dir.write("sync-state/t.txt", "2025-01-01T00:01:00.001Z\n");
    p.tables(R"([{"name": "t", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("t")->last_sync->mode == "incremental");
    p.tables(R"([{"name": "t", "replication_key": "updated_at", "mode": "incremental-append"}])");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("t")->last_sync->mode == "reset");
    // Append keeps every version: a UNIQUE (id) carried over would refuse the second one.
    p.src().exec("UPDATE t SET v = 'second', updated_at = now() WHERE id = 7");
    REQUIRE_SYNC(p, 0);
    CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.t WHERE id = 7") == "2");
}
