// A reload replaces the table, not what users put on it: grants, comment, owner.
#include "support/pipeline.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

using namespace pgincr;
using namespace pgincr::test;

namespace {

// An incremental table t and a full-refresh table f, loaded once.
void seed_t_and_f(Pipeline &p) {
    p.src().exec("CREATE TABLE t (id int PRIMARY KEY, v text, "
                 "updated_at timestamptz NOT NULL DEFAULT now())");
    p.src().exec("CREATE TABLE f (id int PRIMARY KEY, v text)");
    p.src().exec("INSERT INTO t (id, v) SELECT g, 'v' || g FROM generate_series(1, 100) g");
    p.src().exec("INSERT INTO f SELECT g, 'f' || g FROM generate_series(1, 50) g");
    p.tables(R"([{"name": "t", "replication_key": "updated_at"},
                 {"name": "f", "mode": "full-refresh"}])");
    REQUIRE_SYNC(p, 0);
}

// Roles are cluster-wide and shared by tests: created once, whichever test runs first.
void make_role(pg::Connection &admin_conn, const std::string &role) {
    admin_conn.exec(fmt::format("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE "
                                "rolname = '{0}') THEN CREATE ROLE {0}; END IF; END $$",
                                role));
}

} // namespace

TEST_CASE("reload keeps: grants, the comment and the owner survive a reset, a schema change "
          "and every full-refresh run") {
    Pipeline p("keep_grants");
    seed_t_and_f(p);
    auto dadmin = admin(pg::Side::dest);
    for (const char *role : {"keep_analyst", "keep_owner"})
        make_role(*dadmin, role);
    for (const char *t : {"t", "f"}) {
        p.dst().exec(fmt::format("GRANT SELECT ON replica.{} TO keep_analyst", t));
        p.dst().exec(fmt::format("GRANT SELECT, UPDATE ON replica.{} TO PUBLIC", t));
        p.dst().exec(fmt::format("COMMENT ON TABLE replica.{} IS 'the analysts'' copy'", t));
    }
    p.dst().exec("ALTER TABLE replica.t OWNER TO keep_owner");
    p.dst().exec("CREATE INDEX analyst_v_idx ON replica.t (v) WHERE id > 10");
    p.dst().exec("CREATE INDEX analyst_f_lower ON replica.f (lower(v))");

    auto kept = [&](const std::string &t) {
        std::string rel = "replica." + t;
        CHECK(scalar(p.dst(), fmt::format("SELECT has_table_privilege('keep_analyst', '{}', "
                                          "'SELECT')",
                                          rel)) == "t");
        CHECK(scalar(p.dst(), fmt::format("SELECT has_table_privilege('keep_analyst', '{}', "
                                          "'UPDATE')",
                                          rel)) == "t"); // through PUBLIC
        CHECK(scalar(p.dst(), fmt::format("SELECT has_table_privilege('keep_analyst', '{}', "
                                          "'DELETE')",
                                          rel)) == "f");
        CHECK(scalar(p.dst(), fmt::format("SELECT obj_description('{}'::regclass, 'pg_class')",
                                          rel)) == "the analysts' copy");
    };
    for (std::string step : {"reset", "schema change"}) {
        CAPTURE(step);
        if (step == "reset")
            REQUIRE(p.run({"reset", "t"}).exit_code == 0);
        else
            p.src().exec(
                "ALTER TABLE t ADD COLUMN w int DEFAULT 1; ALTER TABLE f ADD COLUMN w int");
        REQUIRE_SYNC(p, 0);
        CHECK(p.state("t")->last_sync->mode == "reset");
        CHECK(p.state("f")->last_sync->mode == "reset");
        kept("t");
        kept("f");
        CHECK(scalar(p.dst(), "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = "
                              "'replica.t'::regclass") == "keep_owner");
        CHECK(scalar(p.dst(), "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM "
                              "pg_indexes WHERE schemaname = 'replica' AND indexname LIKE "
                              "'analyst%'") == "analyst_f_lower,analyst_v_idx");
        CHECK(scalar(p.dst(), "SELECT indexdef FROM pg_indexes WHERE indexname = "
                              "'analyst_v_idx'") ==
              "CREATE INDEX analyst_v_idx ON replica.t USING btree (v) WHERE (id > 10)");
        // pgincr's own unique index is not doubled by the carry-over.
        CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_indexes WHERE schemaname = 'replica' AND "
                              "tablename = 't'") == "2");
        CHECK(p.equal("t"));
        CHECK(p.equal("f"));
    }
}

TEST_CASE("reload keeps: a user index on a column the source dropped fails the reload naming "
          "the index - the old table, its index and the state stay") {
    Pipeline p("keep_index_gone");
    p.src().exec("CREATE TABLE t (id int PRIMARY KEY, v text, gone text, "
                 "updated_at timestamptz NOT NULL DEFAULT now())");
    p.src().exec("INSERT INTO t (id, v) SELECT g, 'v' || g FROM generate_series(1, 100) g");
    p.tables(R"([{"name": "t", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);
    p.dst().exec("CREATE INDEX analyst_gone ON replica.t (gone)");
    auto before = *p.state("t");
    p.src().exec("ALTER TABLE t DROP COLUMN gone");
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.all().find("cannot rebuild index \"replica\".\"analyst_gone\"") != std::string::npos);
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_attribute WHERE attrelid = "
                          "'replica.t'::regclass AND attname = 'gone'") == "1");
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_indexes WHERE indexname = 'analyst_gone'") ==
          "1");
    CHECK(p.state("t")->fingerprint == before.fingerprint);
    p.dst().exec("DROP INDEX replica.analyst_gone");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("t")->last_sync->mode == "reset");
    CHECK(p.equal("t"));
}

TEST_CASE("reload keeps: views, a view on a view and a materialized view are recreated on the "
          "reloaded table with their grants - through a reset, a schema change, a dropped "
          "<table>_stg and full-refresh runs") {
    Pipeline p("keep_views");
    seed_t_and_f(p);
    auto dadmin = admin(pg::Side::dest);
    make_role(*dadmin, "keep_analyst");
    p.dst().exec("CREATE SCHEMA analytics");
    p.dst().exec("CREATE VIEW analytics.t_view AS SELECT id, v FROM replica.t WHERE id > 10");
    p.dst().exec("CREATE VIEW analytics.t_count AS SELECT count(*) AS n FROM analytics.t_view");
    p.dst().exec("CREATE MATERIALIZED VIEW analytics.f_mat AS SELECT id, v FROM replica.f");
    p.dst().exec("GRANT SELECT ON analytics.t_view, analytics.t_count TO keep_analyst");
    p.dst().exec("COMMENT ON VIEW analytics.t_count IS 'for the dashboard'");

    for (std::string step : {"reset", "schema change", "dropped staging"}) {
        CAPTURE(step);
        p.src().exec(fmt::format("INSERT INTO t (id, v) VALUES ({0}, 'new'); INSERT INTO f VALUES "
                                 "({0}, 'new')",
                                 step == "reset"           ? 1000
                                 : step == "schema change" ? 1001
                                                           : 1002));
        if (step == "reset")
            REQUIRE(p.run({"reset", "t"}).exit_code == 0);
        else if (step == "schema change")
            p.src().exec("ALTER TABLE t ADD COLUMN w int DEFAULT 1");
        else
            p.dst().exec("DROP TABLE replica.t_stg");
        REQUIRE_SYNC(p, 0);
        CHECK(p.state("t")->last_sync->mode == "reset");
        CHECK(p.state("f")->last_sync->mode == "reset");
        CHECK(p.equal("t"));
        CHECK(p.equal("f"));
        CHECK(scalar(p.dst(), "SELECT n FROM analytics.t_count") ==
              scalar(p.src(), "SELECT count(*) FROM t WHERE id > 10"));
        CHECK(scalar(p.dst(), "SELECT count(*) FROM analytics.f_mat") ==
              scalar(p.src(), "SELECT count(*) FROM f"));
        CHECK(scalar(p.dst(), "SELECT has_table_privilege('keep_analyst', 'analytics.t_count', "
                              "'SELECT')") == "t");
        CHECK(scalar(p.dst(), "SELECT obj_description('analytics.t_count'::regclass, "
                              "'pg_class')") == "for the dashboard");
    }
}

TEST_CASE("reload keeps: a schema change dropping a column a view uses fails naming the view - "
          "old table and view and state unchanged - without the view the next sync reloads") {
    Pipeline p("keep_view_gone");
    p.src().exec("CREATE TABLE t (id int PRIMARY KEY, v text, gone text, "
                 "updated_at timestamptz NOT NULL DEFAULT now())");
    p.src().exec("INSERT INTO t (id, v, gone) SELECT g, 'v' || g, 'x' FROM "
                 "generate_series(1, 100) g");
    p.tables(R"([{"name": "t", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);
    p.dst().exec("CREATE VIEW replica.uses_gone AS SELECT id, gone FROM replica.t");
    auto before = *p.state("t");
    p.src().exec("ALTER TABLE t DROP COLUMN gone");
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.all().find("cannot recreate view replica.uses_gone") != std::string::npos);
    CHECK(r.all().find("gone") != std::string::npos);
    CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.uses_gone WHERE gone = 'x'") == "100");
    CHECK(p.state("t")->fingerprint == before.fingerprint);
    p.dst().exec("DROP VIEW replica.uses_gone");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("t")->last_sync->mode == "reset");
    CHECK(p.equal("t"));
}
