// Servers set up the way real ones are: another encoding, role settings, a source
// session that dies, a TRUNCATE racing the snapshot, a hot-standby source, TLS on one
// side only, a destination restart under the run lock.
#include "support/pause.hpp"
#include "support/pipeline.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <future>
#include <thread>

using namespace pgincr;
using namespace pgincr::test;

namespace {

const char *orders_config =
    R"([{"name": "orders", "replication_key": "updated_at", "unique_cols": ["id"]}])";

void seed_orders(pg::Connection &src, int rows) {
    src.exec("CREATE TABLE orders (id bigint PRIMARY KEY, v int, note text, "
             "updated_at timestamptz NOT NULL DEFAULT now())");
    src.exec(fmt::format("INSERT INTO orders (id, v, note, updated_at) SELECT g, g, md5(g::text), "
                         "now() - interval '1 hour' + g * interval '1 ms' FROM "
                         "generate_series(1, {}) g",
                         rows));
}

// Polls `sql` (one boolean) until it is true, for at most 30 s.
bool eventually(pg::Connection &conn, const std::string &sql) {
    for (int i = 0; i < 1500; ++i) {
        if (scalar(conn, sql) == "t")
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

std::string rows_text(pg::Connection &conn, const std::string &sql) {
    auto res = conn.exec(sql, pg::Expect::rows);
    std::string out;
    for (int r = 0; r < res.rows(); ++r) {
        for (int c = 0; c < res.columns(); ++c)
            out += std::string(res.is_null(r, c) ? "NULL" : res.text(r, c)) + "|";
        out += "\n";
    }
    return out;
}

void make_role(pg::Connection &admin_conn, pg::Connection &db_conn, const std::string &role,
               const std::string &password) {
    admin_conn.exec(fmt::format("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                                "'{0}') THEN CREATE ROLE {0}; END IF; END $$",
                                role));
    admin_conn.exec(fmt::format("ALTER ROLE {} LOGIN PASSWORD '{}'", role, password));
    db_conn.exec(fmt::format("GRANT CONNECT, CREATE ON DATABASE {} TO {}",
                             db_conn.quote_ident(scalar(db_conn, "SELECT current_database()")),
                             role));
}

} // namespace

TEST_CASE("real servers: a LATIN1 destination gets UTF8 text right - an unrepresentable "
          "character fails its table only, naming it and the column") {
    Pipeline p("rs_latin1");
    std::string l1 = "rs_latin1_l1";
    auto dadmin = admin(pg::Side::dest);
    dadmin->exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", l1));
    dadmin->exec(fmt::format("CREATE DATABASE {} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
                             "TEMPLATE template0",
                             l1));
    p.dir.write_env(p.dbs, "public", "replica", fmt::format("DEST_DB={}\n", l1));
    p.src().exec("CREATE TABLE words (id int PRIMARY KEY, note text, "
                 "updated_at timestamptz NOT NULL DEFAULT now())");
    p.src().exec(
        "INSERT INTO words (id, note) VALUES (1, 'café déjà vu'), (2, 'naïve Ångström ÿ')");
    p.src().exec("CREATE TABLE prices (id int PRIMARY KEY, label text, "
                 "updated_at timestamptz NOT NULL DEFAULT now())");
    p.src().exec("INSERT INTO prices (id, label) VALUES (1, 'five'), (2, 'costs 5 €')");
    p.tables(R"([{"name": "prices", "replication_key": "updated_at"},
                 {"name": "words", "replication_key": "updated_at"}])");

    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.all().find("[prices]") != std::string::npos);
    CHECK(r.all().find("column \"label\"") != std::string::npos);
    CHECK(r.all().find("LATIN1") != std::string::npos);
    CHECK(p.state("words")->last_sync->result == "ok");
    CHECK_FALSE(p.state("prices"));
    {
        auto dl1 = admin(pg::Side::dest, l1);
        auto q = [](const char *rel) {
            return fmt::format("SELECT id, note, length(note) FROM {} ORDER BY id", rel);
        };
        auto want = rows_text(p.src(), q("public.words"));
        CHECK(want.find("café déjà vu|12|") != std::string::npos);
        CHECK(rows_text(*dl1, q("replica.words")) == want);
        CHECK(scalar(*dl1, "SELECT count(*) FROM pg_tables WHERE tablename = 'prices'") == "0");
    }
    dadmin->exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", l1));
}

TEST_CASE("real servers: statement_timeout, idle_in_transaction_session_timeout, lock_timeout "
          "and search_path set on both roles do not break loads, reloads or merges") {
    Pipeline p("rs_roles");
    auto sadmin = admin(pg::Side::source);
    auto dadmin = admin(pg::Side::dest);
    make_role(*sadmin, p.src(), "rs_limited_reader", "limited-secret");
    make_role(*dadmin, p.dst(), "rs_limited_writer", "limited-secret");
    p.src().exec("GRANT SELECT ON ALL TABLES IN SCHEMA public TO rs_limited_reader");
    p.src().exec("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "
                 "rs_limited_reader");
    for (auto [conn, role] : {std::pair{sadmin.get(), "rs_limited_reader"},
                              std::pair{dadmin.get(), "rs_limited_writer"}})
        conn->exec(fmt::format("ALTER ROLE {0} SET statement_timeout = '200ms'; "
                               "ALTER ROLE {0} SET idle_in_transaction_session_timeout = '1s'; "
                               "ALTER ROLE {0} SET search_path = 'nowhere'; "
                               "ALTER ROLE {0} SET lock_timeout = '1ms'",
                               role));
    // Large enough that its COPY, index build and merge each outlast 200 ms.
    seed_orders(p.src(), 600000);
    p.tables(orders_config);
    p.dir.write_env(p.dbs, "public", "replica",
                    "SOURCE_USERNAME=rs_limited_reader\nSOURCE_PASSWORD=limited-secret\n"
                    "DEST_USERNAME=rs_limited_writer\nDEST_PASSWORD=limited-secret\n");

    {
        // Initial load, with the destination transaction left idle for longer than 1 s.
        std::future<RunResult> run;
        Pause pause(p.dir, "load-before-swap");
        run = std::async(std::launch::async, [&] { return p.sync(pause.env()); });
        REQUIRE(pause.reached());
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        pause.go();
        auto r = run.get();
        INFO(r.all());
        REQUIRE(r.exit_code == 0);
    }
    CHECK(p.equal("orders"));

    REQUIRE(p.run({"reset", "orders"}).exit_code == 0);
    {
        // The reload's swap must wait for a reader of the old table: far more than 1 ms.
        std::future<RunResult> run;
        Pause pause(p.dir, "load-before-swap");
        run = std::async(std::launch::async, [&] { return p.sync(pause.env()); });
        REQUIRE(pause.reached());
        auto reader = admin(pg::Side::dest, p.dbs.name());
        reader->exec("BEGIN");
        reader->exec("SELECT count(*) FROM replica.orders", pg::Expect::value);
        pause.go();
        CHECK(eventually(p.dst(), "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE "
                                  "application_name = 'pgincr' AND wait_event_type = 'Lock')"));
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        reader->exec("COMMIT");
        auto r = run.get();
        INFO(r.all());
        REQUIRE(r.exit_code == 0);
    }
    CHECK(p.state("orders")->last_sync->mode == "reset");
    p.src().exec("UPDATE orders SET v = -v, updated_at = now() WHERE id % 3 = 0");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->rows_merged == 200000);
    CHECK(p.equal("orders"));
}

TEST_CASE("real servers: the source transaction ends before the destination's swap and "
          "merge - a source session killed then does not fail the table") {
    Pipeline p("rs_early_close");
    seed_orders(p.src(), 1000);
    p.tables(orders_config);
    std::string pgincr_on_source = fmt::format(
        "FROM pg_stat_activity WHERE application_name = 'pgincr' AND datname = '{}'", p.dbs.name());
    for (std::string point : {"load-after-copy", "incremental-after-copy"}) {
        CAPTURE(point);
        if (point == "incremental-after-copy")
            p.src().exec("UPDATE orders SET v = -v, updated_at = now() WHERE id <= 100");
        std::future<RunResult> run;
        Pause pause(p.dir, point);
        run = std::async(std::launch::async, [&] { return p.sync(pause.env()); });
        REQUIRE(pause.reached());
        // pgincr's source session is there, and no longer in a transaction.
        CHECK(scalar(p.src(), "SELECT count(*) " + pgincr_on_source) == "1");
        CHECK(scalar(p.src(), "SELECT count(*) " + pgincr_on_source +
                                  " AND (xact_start IS NOT NULL OR backend_xmin IS NOT NULL)") ==
              "0");
        CHECK(scalar(p.src(), "SELECT bool_and(pg_terminate_backend(pid)) " + pgincr_on_source) ==
              "t");
        pause.go();
        auto r = run.get();
        INFO(r.all());
        REQUIRE(r.exit_code == 0);
        auto st = p.state("orders");
        CHECK(st->last_sync->result == "ok");
        if (point == "incremental-after-copy")
            CHECK(st->last_sync->rows_merged == 100);
        CHECK(p.equal("orders"));
    }
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders"));
}

TEST_CASE("real servers: a TRUNCATE and reload committed while pgincr waits for its table lock "
          "loses no rows, on a full load and on an incremental run") {
    Pipeline p("rs_truncate");
    seed_orders(p.src(), 1000);
    p.tables(orders_config);
    for (bool initial : {true, false}) {
        CAPTURE(initial);
        auto writer = admin(pg::Side::source, p.dbs.name());
        writer->exec("BEGIN");
        writer->exec("TRUNCATE orders");
        writer->exec(fmt::format("INSERT INTO orders (id, v, note) SELECT g, g * {}, 'reloaded' "
                                 "FROM generate_series(1, 1200) g",
                                 initial ? 2 : 3));
        auto run = std::async(std::launch::async, [&] { return p.sync(); });
        CHECK(eventually(p.src(), fmt::format("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE "
                                              "application_name = 'pgincr' AND datname = '{}' AND "
                                              "wait_event_type = 'Lock')",
                                              p.dbs.name())));
        writer->exec("COMMIT");
        auto r = run.get();
        INFO(r.all());
        REQUIRE(r.exit_code == 0);
        CHECK(p.state("orders")->last_sync->mode == (initial ? "initial" : "incremental"));
        CHECK(p.dst_count("orders") == 1200);
        CHECK(p.equal("orders"));
    }
}

namespace {

// A transaction opened on the primary before a sync from the standby and committed
// after it: its row carries a key below what that sync saw.
void standby_late_commit(Pipeline &p, const std::string &check_says) {
    seed_orders(p.src(), 1000);
    p.tables(orders_config);
    wait_for_standby(p.src());
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders"));

    auto late = admin(pg::Side::source, p.dbs.name());
    late->exec("BEGIN");
    late->exec("INSERT INTO orders (id, v, note) VALUES (5000, 1, 'late')");
    std::this_thread::sleep_for(std::chrono::milliseconds(1200)); // past the horizon's slack
    p.src().exec("UPDATE orders SET v = -v, updated_at = now() WHERE id <= 10");
    wait_for_standby(p.src());
    auto check = p.run({"check"});
    INFO(check.all());
    CHECK(check.exit_code == 0);
    CHECK(check.all().find(check_says) != std::string::npos);
    REQUIRE_SYNC(p, 0);
    late->exec("COMMIT");
    wait_for_standby(p.src());
    REQUIRE_SYNC(p, 0);
    CHECK(scalar(p.dst(), "SELECT note FROM replica.orders WHERE id = 5000") == "late");
    CHECK(p.equal("orders"));
}

} // namespace

TEST_CASE("real servers: a hot-standby source keeps a late commit of the primary - by the "
          "re-read window, with a warning") {
    auto standby = standby_info();
    Pipeline p("rs_standby_window", "public", "replica",
               fmt::format("SOURCE_PORT={}\n", standby.port));
    standby_late_commit(p, "the source is a hot standby");
}

TEST_CASE("real servers: a hot-standby source keeps a late commit of the primary - by the "
          "horizon read on SOURCE_PRIMARY_HOST") {
    auto standby = standby_info();
    auto primary = admin_info(pg::Side::source);
    Pipeline p("rs_standby_primary", "public", "replica",
               fmt::format("SOURCE_PORT={}\nSOURCE_PRIMARY_HOST={}\nSOURCE_PRIMARY_PORT={}\n"
                           "PGINCR_FALLBACK_LOOKBACK_SECONDS=0\n",
                           standby.port, primary.host, primary.port));
    standby_late_commit(p, "reads the open transactions on the primary");
}

TEST_CASE("real servers: a standby cancelling pgincr's read for recovery gives an error naming "
          "hot_standby_feedback and max_standby_streaming_delay - a rerun converges") {
    auto standby = standby_info();
    Pipeline p("rs_standby_conflict", "public", "replica",
               fmt::format("SOURCE_PORT={}\n", standby.port));
    seed_orders(p.src(), 1000);
    p.tables(orders_config);
    wait_for_standby(p.src());
    {
        std::future<RunResult> run;
        Pause pause(p.dir, "snapshot-taken");
        run = std::async(std::launch::async, [&] { return p.sync(pause.env()); });
        REQUIRE(pause.reached());
        // An ACCESS EXCLUSIVE lock on the primary is replayed on the standby, where
        // pgincr's snapshot holds ACCESS SHARE: after max_standby_streaming_delay (2 s on
        // the test standby) the standby ends pgincr's session.
        p.src().exec("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; COMMIT");
        wait_for_standby(p.src());
        pause.go();
        auto r = run.get();
        INFO(r.all());
        CHECK(r.exit_code == 1);
        CHECK(r.all().find("conflict with recovery") != std::string::npos);
        CHECK(r.all().find("hot_standby_feedback") != std::string::npos);
        CHECK(r.all().find("max_standby_streaming_delay") != std::string::npos);
    }
    CHECK_FALSE(p.state("orders"));
    REQUIRE_SYNC(p, 0);
    wait_for_standby(p.src());
    CHECK(p.equal("orders"));
}

TEST_CASE("real servers: a verify-full TLS source and a plain destination sync in one run - a "
          "wrong root certificate names the source side") {
    Pipeline p("rs_tls");
    auto sadmin = admin(pg::Side::source);
    // pg_hba on the test source rejects this role without TLS.
    sadmin->exec("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                 "'pgincr_tls') THEN CREATE ROLE pgincr_tls; END IF; END $$");
    sadmin->exec("ALTER ROLE pgincr_tls LOGIN PASSWORD 'tls-secret'");
    p.src().exec(fmt::format("GRANT CONNECT ON DATABASE {} TO pgincr_tls", p.dbs.name()));
    seed_orders(p.src(), 1000);
    p.src().exec("GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgincr_tls");
    p.tables(orders_config);
    auto env_for = [&](const std::string &root) {
        return fmt::format("SOURCE_USERNAME=pgincr_tls\n"
                           "SOURCE_PASSWORD=tls-secret\nSOURCE_SSLMODE=verify-full\n"
                           "SOURCE_SSLROOTCERT={}\nDEST_SSLMODE=disable\n",
                           root);
    };
    // PGSSLMODE=require would refuse the destination, which has no TLS: DEST_SSLMODE wins.
    std::map<std::string, std::string> env = {{"PGSSLMODE", "require"}};

    p.dir.write_env(p.dbs, "public", "replica", env_for(wrong_ca_cert()));
    auto bad = p.sync(env);
    INFO(bad.all());
    CHECK(bad.exit_code == 1);
    CHECK(bad.all().find("[source] cannot connect") != std::string::npos);
    CHECK(bad.all().find("certificate verify failed") != std::string::npos);

    p.dir.write_env(p.dbs, "public", "replica", env_for(ca_cert()));
    auto good = p.sync(env);
    INFO(good.all());
    REQUIRE(good.exit_code == 0);
    CHECK(p.equal("orders"));
    // pg_dump gets the source side's TLS settings through its environment.
    REQUIRE(p.run({"reset", "orders"}).exit_code == 0);
    env["PGINCR_LOAD_VIA"] = "pg_dump";
    p.src().exec("UPDATE orders SET v = -v, updated_at = now() WHERE id <= 10");
    auto dumped = p.sync(env);
    INFO(dumped.all());
    REQUIRE(dumped.exit_code == 0);
    CHECK(p.state("orders")->last_sync->mode == "reset");
    CHECK(p.equal("orders"));
}

TEST_CASE("real servers: a destination restarted between two tables stops the run with exit 3 "
          "- a rerun converges") {
    Pipeline p("rs_lock_restart");
    seed_orders(p.src(), 500);
    p.src().exec("CREATE TABLE second AS SELECT * FROM orders");
    p.src().exec("ALTER TABLE second ADD PRIMARY KEY (id)");
    p.tables(R"([{"name": "orders", "replication_key": "updated_at"},
                 {"name": "second", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);
    p.src().exec("UPDATE orders SET v = -v, updated_at = now() WHERE id <= 50");
    p.src().exec("UPDATE second SET v = -v, updated_at = now() WHERE id <= 50");
    auto second_before = *p.state("second")->last_sync;
    {
        std::future<RunResult> run;
        Pause pause(p.dir, "after-table");
        run = std::async(std::launch::async, [&] { return p.sync(pause.env()); });
        REQUIRE(pause.reached());
        restart_server("dest");
        pause.go();
        auto r = run.get();
        INFO(r.all());
        CHECK(r.exit_code == 3);
        CHECK(r.all().find("lost the run lock") != std::string::npos);
    }
    // The second table was not touched while unlocked.
    CHECK(p.state("second")->last_sync->at == second_before.at);
    REQUIRE_SYNC(p, 0);
    auto dst = admin(pg::Side::dest, p.dbs.name());
    for (const char *t : {"orders", "second"})
        CHECK(digest(p.src(), p.src_rel(t)) == digest(*dst, std::string("replica.") + t));
}

TEST_CASE("real servers: the run lock lost during a load fails that table before its swap - "
          "the old table and state stay, exit 3") {
    Pipeline p("rs_lock_load");
    seed_orders(p.src(), 500);
    p.tables(orders_config);
    {
        std::future<RunResult> run;
        Pause pause(p.dir, "load-after-copy");
        run = std::async(std::launch::async, [&] { return p.sync(pause.env()); });
        REQUIRE(pause.reached());
        // The session that holds pgincr's advisory lock, and only that one.
        CHECK(scalar(p.dst(), "SELECT bool_and(pg_terminate_backend(pid)) FROM pg_locks WHERE "
                              "locktype = 'advisory' AND granted") == "t");
        pause.go();
        auto r = run.get();
        INFO(r.all());
        CHECK(r.exit_code == 3);
        CHECK(r.all().find("lost the run lock") != std::string::npos);
    }
    CHECK_FALSE(p.state("orders"));
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'replica' AND "
                          "tablename = 'orders'") == "0");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders"));
}

TEST_CASE("real servers: a reload whose swap waits past PGINCR_LOCK_TIMEOUT_SECONDS fails "
          "saying so - the old table and state stay, the next run converges") {
    Pipeline p("rs_lock_timeout", "public", "replica", "PGINCR_LOCK_TIMEOUT_SECONDS=1\n");
    seed_orders(p.src(), 500);
    p.tables(orders_config);
    REQUIRE_SYNC(p, 0);
    REQUIRE(p.run({"reset", "orders"}).exit_code == 0);
    auto before = *p.state("orders");
    auto reader = admin(pg::Side::dest, p.dbs.name());
    reader->exec("BEGIN");
    reader->exec("SELECT count(*) FROM replica.orders", pg::Expect::value);
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.all().find("waited PGINCR_LOCK_TIMEOUT_SECONDS (1 s)") != std::string::npos);
    reader->exec("COMMIT");
    auto after = *p.state("orders");
    CHECK(after.watermark == before.watermark);
    CHECK(after.reset_requested);
    CHECK(after.last_sync->result == "failed");
    CHECK(p.equal("orders"));
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->mode == "reset");
    CHECK(p.equal("orders"));
}
