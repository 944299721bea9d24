// Initial and reset loads, end to end: build/pgincr against the two real servers.
#include "support/pipeline.hpp"

#include <atomic>
#include <boost/process.hpp>
#include <csignal>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <thread>

using namespace pgincr;
using namespace pgincr::test;

namespace {

// Every kind of value that has broken a replication tool somewhere.
const char *adversarial_seed = R"SQL(
CREATE TYPE "My Schema".mood AS ENUM ('happy', 'sad', 'it''s complicated');
CREATE DOMAIN "My Schema".posint AS integer CHECK (VALUE > 0);
CREATE TYPE "My Schema".pair AS (a int, b text);
CREATE TABLE "My Schema"."Order ""Items"" 2" (
    "Id" bigint PRIMARY KEY,
    "Mixed Case" text,
    "select" text,
    "1st" int,
    note text,
    big numeric(20,6),
    plain_num numeric,
    f4 real,
    f8 double precision,
    vc varchar(200),
    ch char(3),
    payload jsonb,
    js json,
    raw bytea,
    tags text[],
    nums int[],
    mood "My Schema".mood,
    moods "My Schema".mood[],
    p "My Schema".posint,
    pr "My Schema".pair,
    at_tz timestamptz,
    at_local timestamp,
    d date,
    t time,
    iv interval,
    u uuid,
    ip inet,
    flag boolean,
    doubled numeric GENERATED ALWAYS AS (big * 2) STORED,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON "My Schema"."Order ""Items"" 2" (updated_at);
INSERT INTO "My Schema"."Order ""Items"" 2"
    ("Id", "Mixed Case", "select", "1st", note, big, plain_num, f4, f8, vc, ch, payload, js, raw,
     tags, nums, mood, moods, p, pr, at_tz, at_local, d, t, iv, u, ip, flag, updated_at)
SELECT g,
       'Ünïcödé ✓ ' || g,
       'kw',
       g,
       CASE g % 5 WHEN 0 THEN E'tab\there' WHEN 1 THEN E'new\nline' WHEN 2 THEN E'back\\slash'
                  WHEN 3 THEN '\N' ELSE NULL END,
       g * 1.123456,
       '1e-20'::numeric + g,
       g / 3.0,
       g / 7.0,
       repeat('v', g % 200),
       'ab',
       CASE g % 4 WHEN 0 THEN '[1, 2, 3]'::jsonb WHEN 1 THEN '"scalar"'::jsonb
                  WHEN 2 THEN '{"k": {"n": [true, null]}}'::jsonb ELSE 'null'::jsonb END,
       '{"a": 1,   "a": 2}'::json,
       decode('00ff00' || lpad(to_hex(g), 8, '0'), 'hex'),
       ARRAY['x', NULL, 'y "quoted"', E'z\\w'],
       ARRAY[g, g + 1],
       (ARRAY['happy', 'sad', 'it''s complicated'])[1 + g % 3]::"My Schema".mood,
       ARRAY['happy', 'sad']::"My Schema".mood[],
       g,
       ROW(g, 'p' || g)::"My Schema".pair,
       '2024-02-29 23:59:59.999999+00'::timestamptz + g * interval '1 microsecond',
       '2024-01-01 00:00:00.000001'::timestamp + g * interval '1 second',
       '2024-01-01'::date + g,
       '12:34:56.789'::time,
       interval '1 day 2 hours 3.5 seconds',
       md5(g::text)::uuid,
       '10.0.0.1/8',
       g % 2 = 0,
       '2025-01-01 00:00:00.000123+00'::timestamptz + g * interval '1 second'
  FROM generate_series(1, 500) g;
)SQL";

std::string config_for(const std::string &table, const std::string &extra = "") {
    std::string escaped;
    for (char c : table)
        escaped += c == '"' ? std::string("\\\"") : std::string(1, c);
    return fmt::format(R"([{{"name": "{}", "replication_key": "updated_at"{}}}])", escaped, extra);
}

} // namespace

TEST_CASE("load: every type and awkward identifiers arrive bit-identical") {
    Pipeline p("load_types", "My Schema", "Dest Schema");
    p.src().exec(adversarial_seed);
    const std::string table = "Order \"Items\" 2";
    p.tables(config_for(table));
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal(table));
    // Generated values equal the source's; enums and composites arrive as text.
    CHECK(scalar(p.dst(), fmt::format("SELECT sum(doubled) FROM {}", p.dst_rel(table))) ==
          scalar(p.src(), fmt::format("SELECT sum(doubled) FROM {}", p.src_rel(table))));
    CHECK(scalar(p.dst(), fmt::format("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                      "WHERE attrelid = '{}'::regclass AND attname = 'big'",
                                      p.dst_rel(table))) == "numeric(20,6)");
    auto st = p.state(table);
    REQUIRE(st);
    CHECK(st->last_sync->mode == "initial");
    REQUIRE(st->watermark);
    // µs precision and an explicit offset, exactly as PostgreSQL prints timestamptz.
    CHECK(st->watermark->find('.') != std::string::npos);
    CHECK(st->watermark->back() != 'Z');

    // A second sync after changes is incremental and still equal.
    p.src().exec(
        fmt::format("UPDATE {} SET note = E'changed\\\\N', updated_at = now() WHERE \"Id\" "
                    "<= 10",
                    p.src_rel(table)));
    REQUIRE_SYNC(p, 0);
    CHECK(p.state(table)->last_sync->mode == "incremental");
    CHECK(p.equal(table));

    // The other load path gives the same bytes.
    REQUIRE(p.run({"reset", table}).exit_code == 0);
    auto via_dump = p.sync({{"PGINCR_LOAD_VIA", "pg_dump"}});
    INFO(via_dump.all());
    REQUIRE(via_dump.exit_code == 0);
    CHECK(p.state(table)->last_sync->mode == "reset");
    CHECK(p.equal(table));
}

TEST_CASE("load: a 70-column table") {
    Pipeline p("load_wide");
    std::string cols, vals;
    for (int i = 1; i <= 68; ++i) {
        cols += fmt::format(", c{} {}", i, i % 3 == 0 ? "text" : i % 3 == 1 ? "bigint" : "numeric");
        vals += fmt::format(", {}",
                            i % 3 == 0 ? fmt::format("'v{}' || g", i) : "g * " + std::to_string(i));
    }
    p.src().exec(
        fmt::format("CREATE TABLE wide (id int PRIMARY KEY{}, updated_at timestamptz)", cols));
    p.src().exec(
        fmt::format("INSERT INTO wide SELECT g{}, now() FROM generate_series(1, 2000) g", vals));
    p.tables(config_for("wide"));
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("wide"));
    CHECK(scalar(p.dst(),
                 "SELECT count(*) FROM pg_attribute WHERE attrelid = 'replica.wide'::regclass "
                 "AND attnum > 0") == "70");
}

TEST_CASE("load: each kind of schema drift triggers a reset and ends equal") {
    Pipeline p("load_drift");
    p.src().exec("CREATE TABLE d (id int PRIMARY KEY, a text, b varchar(200), c numeric(10,2), "
                 "e int NOT NULL, f int[], g bigint GENERATED ALWAYS AS (id * 2) STORED, "
                 "updated_at timestamptz DEFAULT now())");
    p.src().exec("INSERT INTO d (id, a, b, c, e, f) SELECT g, g::text, 'b', g, g, ARRAY[g] FROM "
                 "generate_series(1, 100) g");
    p.tables(config_for("d"));
    REQUIRE_SYNC(p, 0);

    const char *drifts[] = {
        "ALTER TABLE d ALTER COLUMN a TYPE int USING a::int", // text -> int
        "ALTER TABLE d ALTER COLUMN b TYPE varchar(300)",     // typmod
        "ALTER TABLE d ALTER COLUMN c TYPE numeric(20,6)",    // numeric precision
        "ALTER TABLE d ALTER COLUMN e TYPE bigint",           // int -> bigint
        "ALTER TABLE d ALTER COLUMN e DROP NOT NULL",         // relaxed NOT NULL
        "ALTER TABLE d ALTER COLUMN f TYPE bigint[]",         // array element type
        "ALTER TABLE d ADD COLUMN h text DEFAULT 'new'",      // new column
        "ALTER TABLE d DROP COLUMN g, ADD COLUMN g bigint GENERATED ALWAYS AS (id * 3) STORED",
    };
    for (const char *ddl : drifts) {
        CAPTURE(ddl);
        p.src().exec(ddl);
        REQUIRE_SYNC(p, 0);
        CHECK(p.state("d")->last_sync->mode == "reset");
        CHECK(p.equal("d"));
        REQUIRE_SYNC(p, 0);
        CHECK(p.state("d")->last_sync->mode == "incremental");
    }
    // After the relaxed NOT NULL, NULLs arrive (the old tool failed here forever).
    p.src().exec("INSERT INTO d (id, e) VALUES (1000, NULL)");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("d"));

    // A column changed by hand in the destination also triggers a reload.
    p.dst().exec("ALTER TABLE replica.d ALTER COLUMN a TYPE text");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("d")->last_sync->mode == "reset");
    CHECK(p.equal("d"));
}

TEST_CASE("load: dropping the destination table - or only its staging table - reloads it") {
    Pipeline p("load_drop");
    p.src().exec("CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz DEFAULT now())");
    p.src().exec("INSERT INTO t (id) SELECT generate_series(1, 100)");
    p.tables(config_for("t"));
    REQUIRE_SYNC(p, 0);
    p.dst().exec("DROP TABLE replica.t");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("t")->last_sync->mode == "reset");
    CHECK(p.equal("t"));
    p.dst().exec("DROP TABLE replica.t_stg");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("t")->last_sync->mode == "reset");
    CHECK(p.equal("t"));
    // `pgincr reset` too.
    auto r = p.run({"reset", "t"});
    CHECK(r.exit_code == 0);
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("t")->last_sync->mode == "reset");
    CHECK(p.equal("t"));
}

TEST_CASE("load: a reader polling during a reset never sees the table empty or partial") {
    Pipeline p("load_atomic");
    p.src().exec(
        "CREATE TABLE t (id int PRIMARY KEY, pad text, updated_at timestamptz DEFAULT now())");
    p.src().exec(
        "INSERT INTO t (id, pad) SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g");
    p.tables(config_for("t"));
    REQUIRE_SYNC(p, 0);
    p.src().exec("INSERT INTO t (id, pad) SELECT g, 'y' FROM generate_series(200001, 200100) g");
    auto r = p.run({"reset", "t"});
    REQUIRE(r.exit_code == 0);

    std::atomic<bool> done{false};
    std::vector<long long> seen;
    std::thread reader([&] {
        auto conn = admin(pg::Side::dest, p.dbs.name());
        while (!done) {
            seen.push_back(std::stoll(scalar(*conn, "SELECT count(*) FROM replica.t")));
        }
        seen.push_back(std::stoll(scalar(*conn, "SELECT count(*) FROM replica.t")));
    });
    auto res = p.sync();
    done = true;
    reader.join();
    INFO(res.all());
    REQUIRE(res.exit_code == 0);
    REQUIRE(seen.size() >= 2);
    for (auto n : seen)
        CHECK((n == 200000 || n == 200100));
    CHECK(seen.back() == 200100);
    CHECK(p.equal("t"));
}

TEST_CASE(
    "load: a load killed with kill -9 leaves the old table and state - the next run converges") {
    Pipeline p("load_killed");
    p.src().exec("CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz DEFAULT now())");
    p.src().exec("INSERT INTO t (id) SELECT generate_series(1, 1000)");
    p.tables(config_for("t"));
    REQUIRE_SYNC(p, 0);
    auto before_state = p.dir.read("sync-state/t.json");
    auto before = digest(p.dst(), "replica.t");
    p.src().exec("INSERT INTO t (id) SELECT generate_series(1001, 1500)");

    for (std::string via : {"copy", "pg_dump"})
        for (std::string point : {"load-after-copy", "load-before-commit"}) {
            CAPTURE(via);
            CAPTURE(point);
            REQUIRE(p.run({"reset", "t"}).exit_code == 0);
            auto reset_state = p.dir.read("sync-state/t.json");
            auto r = p.sync({{"PGINCR_FAULT", point}, {"PGINCR_LOAD_VIA", via}});
            CHECK(r.signal == SIGKILL);
            CHECK(digest(p.dst(), "replica.t") == before);
            CHECK(p.dir.read("sync-state/t.json") == reset_state);
        }
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("t"));
    // No leftovers from the killed loads.
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE "
                          "'\\_pgincr\\_load%'") == "0");
    (void)before_state;
}

TEST_CASE("load: a pg_dump failure is reported with its stderr - and the other tables still sync") {
    Pipeline p("load_dump_fails");
    p.src().exec("CREATE TABLE good (id int PRIMARY KEY, updated_at timestamptz DEFAULT now())");
    p.src().exec("CREATE TABLE bad (id int PRIMARY KEY, updated_at timestamptz DEFAULT now())");
    p.src().exec("INSERT INTO good (id) SELECT generate_series(1, 10)");
    p.src().exec("INSERT INTO bad (id) SELECT generate_series(1, 10)");
    // A pg_dump that fails for one table only, the way a real failure would look.
    p.dir.write("fake_pg_dump", "#!/bin/sh\n"
                                "case \"$*\" in *'\"bad\"'*) echo 'pg_dump: error: query failed: "
                                "simulated disk failure' >&2; exit 1;; esac\n"
                                "exec pg_dump \"$@\"\n");
    std::filesystem::permissions(p.dir.path() / "fake_pg_dump", std::filesystem::perms::owner_all);
    p.tables(R"([{"name": "bad", "replication_key": "updated_at"},
                 {"name": "good", "replication_key": "updated_at"}])");
    auto r = p.sync({{"PGINCR_PG_DUMP", (p.dir.path() / "fake_pg_dump").string()},
                     {"PGINCR_LOAD_VIA", "pg_dump"}});
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("pg_dump exited with status 1") != std::string::npos);
    CHECK(r.err.find("simulated disk failure") != std::string::npos);
    CHECK(p.equal("good"));
    CHECK_FALSE(p.state("bad"));
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_class WHERE relname = 'bad'") == "0");
}
