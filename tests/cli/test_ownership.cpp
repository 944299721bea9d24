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
