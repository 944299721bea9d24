// The cdc mode end to end (`"mode": "cdc"`): the initial load under the slot's
// snapshot, every insert, update, delete and truncate streamed and applied once, across
// tables with composite and text keys, TOASTed values left unchanged, writes during
// loads and reloads, kill -9 at each step, columns changing while streaming, the
// source's problems said clearly, `pgincr teardown`, and a slot the server invalidated.
#include "pg/replication.hpp"
#include "support/pause.hpp"
#include "support/pipeline.hpp"

#include <atomic>
#include <csignal>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

using namespace pgincr;
using namespace pgincr::test;

namespace {

// A pipeline whose slot and publication are named after the test, dropped at the end.
struct CdcPipeline {
    explicit CdcPipeline(const std::string &name, const std::string &extra_env = "")
        : slot("pgincr_t_" + name), cleanup{slot},
          p(name, "public", "replica", fmt::format("PGINCR_SLOT={}\n{}", slot, extra_env)) {}
    ~CdcPipeline() {
        try {
            p.src().exec(fmt::format("DROP PUBLICATION IF EXISTS {}", slot));
        } catch (...) {
        }
    }
    std::string slot;
    SlotCleanup cleanup;
    Pipeline p;
};

const char *three_tables = R"([
  {"name": "orders", "mode": "cdc"},
  {"name": "pairs", "mode": "cdc"},
  {"name": "codes", "mode": "cdc", "unique_cols": ["code"]}
])";

void create_three(Pipeline &p, int rows) {
    p.src().exec("CREATE TABLE orders (id bigint PRIMARY KEY, note text, amount numeric(12,2), "
                 "at timestamptz DEFAULT now())");
    p.src().exec("CREATE TABLE pairs (region text, n int, v int, PRIMARY KEY (region, n))");
    p.src().exec("CREATE TABLE codes (code text NOT NULL, note text)");
    p.src().exec("CREATE UNIQUE INDEX codes_code ON codes (code)");
    p.src().exec("ALTER TABLE codes REPLICA IDENTITY USING INDEX codes_code");
    p.src().exec(fmt::format("INSERT INTO orders SELECT g, 'order ' || g, g * 1.5 FROM "
                             "generate_series(1, {}) g",
                             rows));
    p.src().exec(fmt::format("INSERT INTO pairs SELECT (ARRAY['eu','us'])[1 + g % 2], g, g FROM "
                             "generate_series(1, {}) g",
                             rows));
    p.src().exec(fmt::format("INSERT INTO codes SELECT 'c' || g, 'note ' || g FROM "
                             "generate_series(1, {}) g",
                             rows));
}

bool all_equal(Pipeline &p) {
    bool ok = true;
    for (const char *t : {"orders", "pairs", "codes"}) {
        INFO("table ", t);
        bool eq = p.equal(t);
        CHECK(eq);
        ok = ok && eq;
    }
    return ok;
}

std::string slot_count(Pipeline &p, const std::string &slot) {
    return scalar(
        p.src(),
        fmt::format("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'", slot));
}

} // namespace

TEST_CASE("cdc: inserts, updates, deletes and truncate in small and large transactions across "
          "tables with composite and text keys") {
    CdcPipeline c("cdc_basic");
    auto &p = c.p;
    create_three(p, 1000);
    p.tables(three_tables);
    REQUIRE_SYNC(p, 0);
    CHECK(all_equal(p));
    CHECK(slot_count(p, c.slot) == "1");
    CHECK(scalar(p.src(), fmt::format("SELECT count(*) FROM pg_publication_tables WHERE pubname "
                                      "= '{}'",
                                      c.slot)) == "3");
    auto first = p.state("orders");
    REQUIRE(first);
    REQUIRE(first->lsn);
    CHECK(first->last_sync->mode == "initial");

    // Many small transactions of every kind over the three tables.
    for (int i = 0; i < 60; ++i) {
        p.src().exec(fmt::format("INSERT INTO orders VALUES ({}, 'new', 1)", 10000 + i));
        p.src().exec(fmt::format("UPDATE orders SET note = 'changed {0}' WHERE id = {0}", i + 1));
        p.src().exec(fmt::format("DELETE FROM pairs WHERE n = {}", i + 1));
        p.src().exec(fmt::format("UPDATE codes SET code = 'moved' || {0} WHERE code = 'c{0}'",
                                 i + 100)); // the key itself changes
        p.src().exec(fmt::format("UPDATE pairs SET v = -v WHERE n = {}", i + 500));
    }
    // One large transaction, and a truncate followed by new rows.
    p.src().exec("BEGIN; UPDATE orders SET amount = amount + 1 WHERE id % 3 = 0; INSERT INTO "
                 "orders SELECT g, 'bulk', 2 FROM generate_series(20000, 39999) g; DELETE FROM "
                 "orders WHERE id BETWEEN 200 AND 400; UPDATE pairs SET region = 'ap' WHERE n % "
                 "5 = 0; COMMIT");
    p.src().exec("BEGIN; TRUNCATE codes; INSERT INTO codes SELECT 'd' || g, 'after truncate' FROM "
                 "generate_series(1, 50) g; COMMIT");
    p.src().exec("UPDATE codes SET note = 'last' WHERE code = 'd7'");
    REQUIRE_SYNC(p, 0);
    CHECK(all_equal(p));
    auto second = p.state("orders");
    REQUIRE(second);
    CHECK(second->last_sync->mode == "cdc");
    CHECK(pg::Lsn::parse(*second->lsn) > pg::Lsn::parse(*first->lsn));

    // Nothing new: nothing applied, and the position still moves up to the source's end,
    // so that the slot releases WAL.
    p.src().exec("CREATE TABLE unrelated (x int)");
    p.src().exec("INSERT INTO unrelated SELECT generate_series(1, 1000)");
    auto r = p.sync();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(r.all().find("0 changes applied") != std::string::npos);
    CHECK(all_equal(p));
    CHECK(pg::Lsn::parse(*p.state("orders")->lsn) > pg::Lsn::parse(*second->lsn));
    CHECK(scalar(p.dst(), "SELECT count(*) FROM replica._pgincr_tables WHERE lsn IS NOT NULL") ==
          "3");
    // No <table>_stg: the stream stages in a temporary table.
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'replica' AND "
                          "tablename LIKE '%\\_stg'") == "0");
}

TEST_CASE("cdc: TOASTed text and jsonb left unchanged by updates keep their values, also for an "
          "insert and an update of the same row in one batch") {
    CdcPipeline c("cdc_toast");
    auto &p = c.p;
    // md5 text barely compresses: about 13 kB per value, stored out of line.
    p.src().exec("CREATE TABLE docs (id int PRIMARY KEY, small int, body text, meta jsonb)");
    p.src().exec("INSERT INTO docs SELECT g, g, (SELECT string_agg(md5(g::text || i::text), '') "
                 "FROM generate_series(1, 400) i), (SELECT jsonb_agg(md5(i::text || g::text)) "
                 "FROM generate_series(1, 400) i) FROM generate_series(1, 20) g");
    REQUIRE(scalar(p.src(), "SELECT pg_total_relation_size(reltoastrelid) > 100000 FROM pg_class "
                            "WHERE relname = 'docs'") == "t");
    p.tables(R"([{"name": "docs", "mode": "cdc"}])");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("docs"));

    p.src().exec("UPDATE docs SET small = small + 100");                  // body and meta: 'u'
    p.src().exec("UPDATE docs SET meta = '{\"short\": 1}' WHERE id = 3"); // body still 'u'
    p.src().exec("INSERT INTO docs SELECT 100, 0, string_agg(md5(i::text), ''), "
                 "jsonb_agg(i) FROM generate_series(1, 1000) i");
    p.src().exec("UPDATE docs SET small = 7 WHERE id = 100"); // same batch as its insert
    p.src().exec("BEGIN; UPDATE docs SET small = -1 WHERE id = 5; UPDATE docs SET small = -2 "
                 "WHERE id = 5; COMMIT");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("docs"));
    CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.docs WHERE body IS NULL OR meta IS NULL") ==
          "0");
    CHECK(scalar(p.dst(), "SELECT small FROM replica.docs WHERE id = 100") == "7");
}

TEST_CASE("cdc: writes throughout the initial load and throughout a reset of one table, while "
          "the others stream") {
    CdcPipeline c("cdc_writes");
    auto &p = c.p;
    create_three(p, 30000);
    p.tables(three_tables);
    std::atomic<bool> stop{false};
    std::atomic<long> writes{0};
    auto writer = [&] {
        auto conn = admin(pg::Side::source, p.dbs.name());
        for (long i = writes + 1; !stop; ++i) {
            conn->exec(fmt::format("INSERT INTO orders VALUES ({}, 'w', 1)", 100000 + i));
            conn->exec(
                fmt::format("UPDATE orders SET note = 'w{0}' WHERE id = {1}", i, 1 + i % 30000));
            conn->exec(fmt::format("DELETE FROM pairs WHERE n = {}", 1 + (i * 7) % 30000));
            conn->exec(fmt::format("UPDATE codes SET note = 'w{0}' WHERE code = 'c{1}'", i,
                                   1 + (i * 13) % 30000));
            writes = i;
        }
    };
    {
        std::thread t(writer);
        auto r = p.sync();
        long during = writes;
        stop = true;
        t.join();
        INFO(r.all());
        CHECK(r.exit_code == 0);
        CHECK(during > 0);
    }
    REQUIRE_SYNC(p, 0);
    CHECK(all_equal(p));

    REQUIRE(p.run({"reset", "orders"}).exit_code == 0);
    stop = false;
    {
        std::thread t(writer);
        auto r = p.sync();
        stop = true;
        t.join();
        INFO(r.all());
        CHECK(r.exit_code == 0);
        CHECK(r.all().find("[orders] reset load") != std::string::npos);
    }
    REQUIRE_SYNC(p, 0);
    CHECK(all_equal(p));
    CHECK(p.state("pairs")->last_sync->mode == "cdc");
}

TEST_CASE("cdc: kill -9 at each step, then a rerun: no loss, no duplicate, no second initial "
          "load") {
    // cdc-ahead-committed: the batch before a transaction of 16 MB or more committed with
    // the position at that transaction's commit, not yet confirmed.
    const char *points[] = {"cdc-slot-created",  "load-before-commit", "cdc-batch-started",
                            "cdc-before-commit", "cdc-after-commit",   "cdc-ahead-committed",
                            "before-state-save"};
    int n = 0;
    for (const char *point : points) {
        CAPTURE(point);
        bool in_load =
            std::string(point) == "cdc-slot-created" || std::string(point) == "load-before-commit";
        CdcPipeline c(fmt::format("cdc_kill_{}", n++));
        auto &p = c.p;
        create_three(p, 2000);
        p.tables(three_tables);
        if (!in_load)
            REQUIRE_SYNC(p, 0);
        p.src().exec("UPDATE orders SET note = 'before kill' WHERE id <= 100");
        p.src().exec("DELETE FROM pairs WHERE n <= 50");
        // Over 16 MB of WAL: the drain commits the batch before it and moves the position
        // to its commit first.
        p.src().exec("BEGIN; INSERT INTO codes SELECT 'k' || g, (SELECT string_agg(md5(g::text "
                     "|| x::text), '') FROM generate_series(1, 60) x) FROM generate_series(1, "
                     "10000) g; COMMIT");
        auto killed = p.sync({{"PGINCR_FAULT", point}});
        INFO(killed.all());
        REQUIRE(killed.signal == SIGKILL);
        p.src().exec("UPDATE orders SET note = 'after kill' WHERE id BETWEEN 50 AND 150");
        p.src().exec("INSERT INTO pairs VALUES ('eu', 1, 1)");
        auto r = p.sync();
        INFO(r.all());
        REQUIRE(r.exit_code == 0);
        if (!in_load) {
            CHECK(r.all().find("initial load") == std::string::npos);
            CHECK(p.state("orders")->last_sync->mode == "cdc");
        }
        CHECK(all_equal(p));
        CHECK(slot_count(p, c.slot) == "1");
    }
}

TEST_CASE("cdc: a source column added and one dropped while the stream runs reload those tables "
          "in the same run, and nothing is applied with the wrong columns") {
    CdcPipeline c("cdc_columns");
    auto &p = c.p;
    create_three(p, 500);
    p.tables(three_tables);
    REQUIRE_SYNC(p, 0);
    RunResult r;
    {
        std::future<RunResult> run;
        Pause pause(p.dir, "cdc-before-drain");
        run = std::async(std::launch::async, [&] { return p.sync(pause.env()); });
        REQUIRE(pause.reached());
        p.src().exec("UPDATE orders SET note = 'before alter' WHERE id <= 10");
        p.src().exec("ALTER TABLE orders ADD COLUMN extra text DEFAULT 'x'");
        p.src().exec("INSERT INTO orders (id, note, extra) VALUES (5000, 'with extra', 'e')");
        p.src().exec("UPDATE pairs SET v = 0 WHERE n <= 10");
        p.src().exec("ALTER TABLE pairs DROP COLUMN v");
        p.src().exec("INSERT INTO pairs VALUES ('ap', 9999)");
        p.src().exec("UPDATE codes SET note = 'streams on' WHERE code = 'c1'");
        pause.go();
        r = run.get();
    }
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(r.all().find("changed while streaming") != std::string::npos);
    CHECK(all_equal(p));
    CHECK(scalar(p.dst(), "SELECT extra FROM replica.orders WHERE id = 5000") == "e");
    p.src().exec("UPDATE orders SET extra = 'y' WHERE id = 1");
    REQUIRE_SYNC(p, 0);
    CHECK(all_equal(p));
    CHECK(p.state("orders")->last_sync->mode == "cdc");
}

TEST_CASE("cdc: a missing replica identity and a source without wal_level = logical are said "
          "with what to change, and the other tables still sync") {
    {
        CdcPipeline c("cdc_identity");
        auto &p = c.p;
        p.src().exec("CREATE TABLE good (id int PRIMARY KEY, v int)");
        p.src().exec("CREATE TABLE noident (id int NOT NULL, v int)");
        p.src().exec("CREATE UNIQUE INDEX noident_id ON noident (id)");
        p.src().exec("CREATE TABLE inc (id int PRIMARY KEY, updated_at timestamptz NOT NULL "
                     "DEFAULT now())");
        for (const char *t : {"good", "noident"})
            p.src().exec(
                fmt::format("INSERT INTO {} SELECT g, g FROM generate_series(1, 10) g", t));
        p.src().exec("INSERT INTO inc (id) SELECT generate_series(1, 10)");
        p.tables(R"([{"name": "good", "mode": "cdc"},
                     {"name": "noident", "mode": "cdc", "unique_cols": ["id"]},
                     {"name": "inc", "replication_key": "updated_at"}])");
        auto check = p.run({"check"});
        INFO(check.all());
        CHECK(check.exit_code == 1);
        CHECK(check.all().find("noident: ERROR") != std::string::npos);
        CHECK(check.all().find("REPLICA IDENTITY USING INDEX") != std::string::npos);
        auto r = p.sync();
        INFO(r.all());
        CHECK(r.exit_code == 1);
        CHECK(r.all().find("REPLICA IDENTITY USING INDEX") != std::string::npos);
        CHECK(p.equal("good"));
        CHECK(p.equal("inc"));
        p.src().exec("ALTER TABLE noident REPLICA IDENTITY USING INDEX noident_id");
        REQUIRE_SYNC(p, 0);
        CHECK(p.equal("noident"));
    }
    {
        // The destination server runs with wal_level = replica: read from it as a source.
        TestDatabases dbs("cdc_nowal");
        dbs.dst().exec("CREATE TABLE streamed (id int PRIMARY KEY)");
        dbs.dst().exec("CREATE TABLE polled (id int PRIMARY KEY, updated_at timestamptz NOT NULL "
                       "DEFAULT now())");
        dbs.dst().exec("INSERT INTO polled (id) SELECT generate_series(1, 5)");
        WorkDir dir;
        auto d = dbs.dest_info();
        dir.write(".env",
                  fmt::format("SOURCE_HOST={0}\nSOURCE_PORT={1}\nSOURCE_DB={2}\nSOURCE_USERNAME={3}"
                              "\nSOURCE_PASSWORD={4}\nSOURCE_SCHEMA=public\nDEST_HOST={0}\n"
                              "DEST_PORT={1}\nDEST_DB={2}\nDEST_USERNAME={3}\nDEST_PASSWORD={4}\n"
                              "DEST_SCHEMA=replica\n",
                              d.host, d.port, d.dbname, d.user, d.password));
        dir.write("tables-config.json", R"([{"name": "streamed", "mode": "cdc"},
                     {"name": "polled", "replication_key": "updated_at"}])");
        for (const auto &args : {std::vector<std::string>{"check"}, {"sync"}}) {
            auto r = dir.run(args);
            INFO(r.all());
            CHECK(r.exit_code == 1);
            CHECK(r.all().find("wal_level = replica") != std::string::npos);
            CHECK(r.all().find("ALTER SYSTEM SET wal_level = logical") != std::string::npos);
        }
        CHECK(scalar(dbs.dst(), "SELECT count(*) FROM replica.polled") == "5");
    }
}

TEST_CASE("cdc: pgincr teardown removes the slot and the publication it created, and a later "
          "sync starts again") {
    CdcPipeline c("cdc_teardown");
    auto &p = c.p;
    create_three(p, 100);
    p.tables(three_tables);
    REQUIRE_SYNC(p, 0);
    auto r = p.run({"teardown"});
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(slot_count(p, c.slot) == "0");
    CHECK(scalar(p.src(), fmt::format("SELECT count(*) FROM pg_publication WHERE pubname = '{}'",
                                      c.slot)) == "0");
    CHECK_FALSE(p.state("orders")->lsn);
    p.src().exec("DELETE FROM orders WHERE id <= 10");
    REQUIRE_SYNC(p, 0);
    CHECK(all_equal(p));
    CHECK(slot_count(p, c.slot) == "1");

    // A publication someone else made is used, and kept by teardown.
    CdcPipeline d("cdc_teardown_dba", "PGINCR_PUBLICATION=dba_pub\n");
    d.p.src().exec("CREATE TABLE t (id int PRIMARY KEY)");
    d.p.src().exec("CREATE PUBLICATION dba_pub FOR TABLE t");
    d.p.tables(R"([{"name": "t", "mode": "cdc"}])");
    REQUIRE_SYNC(d.p, 0);
    d.p.src().exec("INSERT INTO t VALUES (1)");
    REQUIRE_SYNC(d.p, 0);
    CHECK(d.p.equal("t"));
    auto td = d.p.run({"teardown"});
    INFO(td.all());
    CHECK(td.all().find("kept, pgincr did not create it") != std::string::npos);
    CHECK(scalar(d.p.src(), "SELECT count(*) FROM pg_publication WHERE pubname = 'dba_pub'") ==
          "1");
    CHECK(slot_count(d.p, d.slot) == "0");
}

TEST_CASE("cdc: a slot invalidated by max_slot_wal_keep_size is reported as such, and a reset "
          "reloads under a new slot") {
    CdcPipeline c("cdc_lost");
    auto &p = c.p;
    p.src().exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    p.src().exec("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g");
    p.tables(R"([{"name": "t", "mode": "cdc"}])");
    REQUIRE_SYNC(p, 0);

    // ctest runs one test at a time, so no other test's slot is on the server now.
    auto admin_conn = admin(pg::Side::source);
    struct Restore {
        pg::Connection &conn;
        ~Restore() {
            conn.exec("ALTER SYSTEM RESET max_slot_wal_keep_size");
            conn.exec("SELECT pg_reload_conf()");
        }
    } restore{*admin_conn};
    admin_conn->exec("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
    admin_conn->exec("SELECT pg_reload_conf()");
    p.src().exec("CREATE TABLE filler (x text)");
    bool lost = false;
    for (int i = 0; i < 40 && !lost; ++i) {
        p.src().exec("INSERT INTO filler SELECT repeat('x', 200) FROM generate_series(1, 10000)");
        p.src().exec("SELECT pg_switch_wal()");
        admin_conn->exec("CHECKPOINT");
        lost = scalar(*admin_conn,
                      fmt::format("SELECT wal_status FROM pg_replication_slots WHERE slot_name "
                                  "= '{}'",
                                  c.slot)) == "lost";
    }
    REQUIRE(lost);
    p.src().exec("INSERT INTO t VALUES (1000, 'after the loss')");

    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.all().find("was invalidated") != std::string::npos);
    CHECK(r.all().find("pgincr reset") != std::string::npos);
    auto st = p.run({"status", "--json"});
    auto j = nlohmann::json::parse(st.out);
    CHECK(j[0]["slot"]["wal_status"] == "lost");
    CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.t") == "100"); // not silently reloaded

    REQUIRE(p.run({"reset", "t"}).exit_code == 0);
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("t"));
    CHECK(scalar(*admin_conn, fmt::format("SELECT wal_status FROM pg_replication_slots WHERE "
                                          "slot_name = '{}'",
                                          c.slot)) != "lost");
    p.src().exec("INSERT INTO t VALUES (1001, 'streams again')");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("t"));
}

TEST_CASE("cdc: a table whose changes the destination refuses fails alone: the others stream "
          "on, and the next sync reloads it") {
    CdcPipeline c("cdc_refused");
    auto &p = c.p;
    create_three(p, 200);
    p.tables(three_tables);
    REQUIRE_SYNC(p, 0);
    // A user's trigger on the destination table refuses one value.
    p.dst().exec("CREATE FUNCTION replica.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                 "IF NEW.note = 'poison' THEN RAISE EXCEPTION 'refused by a trigger'; END IF; "
                 "RETURN NEW; END $$");
    p.dst().exec("CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON replica.codes FOR EACH ROW "
                 "EXECUTE FUNCTION replica.refuse()");
    for (int i = 0; i < 20; ++i) {
        p.src().exec(fmt::format("UPDATE orders SET note = 'on {0}' WHERE id = {0}", i + 1));
        p.src().exec(fmt::format("DELETE FROM pairs WHERE n = {}", i + 1));
    }
    p.src().exec("UPDATE codes SET note = 'poison' WHERE code = 'c1'");
    p.src().exec("UPDATE orders SET note = 'after the poison' WHERE id = 100");
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.all().find("refused by a trigger") != std::string::npos);
    CHECK(r.all().find("the next sync reloads this one") != std::string::npos);
    CHECK(p.equal("orders"));
    CHECK(p.equal("pairs"));
    CHECK_FALSE(p.equal("codes"));

    p.dst().exec("DROP TRIGGER refuse ON replica.codes");
    auto again = p.sync();
    INFO(again.all());
    CHECK(again.exit_code == 0);
    CHECK(again.all().find("[codes] reset load") != std::string::npos);
    CHECK(all_equal(p));
}

TEST_CASE("cdc: an entry added later is loaded under a new snapshot and joins the publication "
          "while the others stream - a removed one leaves it") {
    CdcPipeline c("cdc_added");
    auto &p = c.p;
    create_three(p, 300);
    p.tables(R"([{"name": "orders", "mode": "cdc"}, {"name": "pairs", "mode": "cdc"}])");
    REQUIRE_SYNC(p, 0);
    auto published = [&] {
        return scalar(p.src(), fmt::format("SELECT string_agg(tablename, ',' ORDER BY tablename) "
                                           "FROM pg_publication_tables WHERE pubname = '{}'",
                                           c.slot));
    };
    CHECK(published() == "orders,pairs");
    p.src().exec("UPDATE orders SET note = 'streamed' WHERE id <= 5");
    p.src().exec("UPDATE codes SET note = 'before it was added' WHERE code = 'c1'");
    p.tables(three_tables);
    auto r = p.sync();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(r.all().find("[codes] initial load") != std::string::npos);
    CHECK(published() == "codes,orders,pairs");
    CHECK(p.state("orders")->last_sync->mode == "cdc");
    p.src().exec("UPDATE codes SET note = 'after it was added' WHERE code = 'c2'");
    REQUIRE_SYNC(p, 0);
    CHECK(all_equal(p));

    p.tables(R"([{"name": "orders", "mode": "cdc"}, {"name": "codes", "mode": "cdc",
                  "unique_cols": ["code"]}])");
    REQUIRE_SYNC(p, 0);
    CHECK(published() == "codes,orders");
}
