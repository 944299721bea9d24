// Incremental syncs end to end: the mark, late commits, crashes, locks and the runner.
#include "support/pipeline.hpp"

#include <boost/process.hpp>
#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <thread>
#include <unistd.h>

using namespace pgincr;
using namespace pgincr::test;
namespace bp = boost::process;

namespace {

const char *orders_config =
    R"([{"name": "orders", "replication_key": "updated_at", "unique_cols": ["id"]}])";

void seed_orders(Pipeline &p, int rows = 1000) {
    p.src().exec("CREATE TABLE orders (id bigint PRIMARY KEY, v int, note text, "
                 "updated_at timestamptz NOT NULL DEFAULT now())");
    p.src().exec("CREATE INDEX ON orders (updated_at)");
    p.src().exec(fmt::format("INSERT INTO orders (id, v, note, updated_at) SELECT g, g, 'n' || g, "
                             "'2025-01-01'::timestamptz + g * interval '1 minute' FROM "
                             "generate_series(1, {}) g",
                             rows));
    p.tables(orders_config);
}

// Waits until pgincr's COPY into the destination is running (or gives up after 30 s).
bool wait_for_copy(pg::Connection &dst) {
    for (int i = 0; i < 3000; ++i) {
        if (scalar(dst, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgincr' "
                        "AND query LIKE 'COPY%'") != "0")
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

bp::child start_sync(const Pipeline &p, bp::ipstream &err) {
    return bp::child(env_or_fail("PGINCR_TEST_BIN"), "sync", bp::start_dir(p.dir.path().string()),
                     bp::std_out > bp::null, bp::std_err > err, bp::std_in < bp::null);
}

void make_reader_role(pg::Connection &src, const std::string &db, bool read_all_stats) {
    src.exec("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgincr_reader') "
             "THEN CREATE ROLE pgincr_reader; END IF; END $$");
    // Other tests use this role too: set the password this test's .env expects.
    src.exec("ALTER ROLE pgincr_reader LOGIN PASSWORD 'reader-secret'");
    src.exec(fmt::format("GRANT CONNECT ON DATABASE {} TO pgincr_reader", src.quote_ident(db)));
    src.exec("GRANT USAGE ON SCHEMA public TO pgincr_reader");
    src.exec("GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgincr_reader");
    src.exec(read_all_stats ? "GRANT pg_read_all_stats TO pgincr_reader"
                            : "REVOKE pg_read_all_stats FROM pgincr_reader");
}

} // namespace

TEST_CASE("incremental: updates and inserts arrive - unchanged rows are not rewritten") {
    Pipeline p("inc_basic");
    seed_orders(p);
    REQUIRE_SYNC(p, 0);
    p.src().exec("UPDATE orders SET v = -v, updated_at = now() WHERE id % 10 = 0");
    p.src().exec("INSERT INTO orders (id, v) SELECT g, g FROM generate_series(1001, 1100) g");
    REQUIRE_SYNC(p, 0);
    auto st = p.state("orders");
    CHECK(st->last_sync->mode == "incremental");
    CHECK(st->last_sync->rows_copied >= 200);
    CHECK(st->last_sync->rows_merged == 200);
    CHECK(p.equal("orders"));
    // A sync with no changes re-reads at most the rows at the mark and merges nothing.
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->rows_merged == 0);
    CHECK(p.equal("orders"));
}

TEST_CASE("incremental: rows exactly at the mark and 1-999 µs above it arrive") {
    Pipeline p("inc_micro");
    seed_orders(p);
    p.src().exec(
        "CREATE TABLE local_ts (id int PRIMARY KEY, v int, updated_at timestamp NOT NULL)");
    p.src().exec("INSERT INTO local_ts SELECT g, g, '2025-01-01 00:00:00.123456'::timestamp + g * "
                 "interval '1 second' FROM generate_series(1, 100) g");
    p.tables(R"([{"name": "orders", "replication_key": "updated_at"},
                 {"name": "local_ts", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);
    for (std::string table : {"orders", "local_ts"}) {
        CAPTURE(table);
        auto mark = *p.state(table)->watermark;
        const char *type = table == "orders" ? "timestamptz" : "timestamp";
        // The old tool floored to milliseconds and compared with '>': all of these were lost.
        p.src().exec(
            fmt::format("UPDATE {} SET v = -1 WHERE updated_at = '{}'::{}", table, mark, type));
        p.src().exec(fmt::format(
            "INSERT INTO {0} (id, v, updated_at) VALUES "
            "(100001, 1, '{1}'::{2}), (100002, 2, '{1}'::{2} + interval '1 microsecond'), "
            "(100003, 3, '{1}'::{2} + interval '999 microseconds'), "
            "(100004, 4, '{1}'::{2} + interval '500 microseconds')",
            table, mark, type));
    }
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders"));
    CHECK(p.equal("local_ts"));
}

TEST_CASE(
    "incremental: a transaction that commits late arrives (superuser and pg_read_all_stats)") {
    for (bool superuser : {true, false}) {
        CAPTURE(superuser);
        Pipeline p(superuser ? "inc_late_su" : "inc_late_role");
        seed_orders(p);
        if (!superuser) {
            make_reader_role(p.src(), p.dbs.name(), true);
            auto env = p.dir.read(".env");
            env += "SOURCE_USERNAME=pgincr_reader\nSOURCE_PASSWORD=reader-secret\n";
            p.dir.write(".env", env);
        }
        REQUIRE_SYNC(p, 0);

        // A transaction starts, writes updated_at = now() (its START time), and stays open.
        auto late = admin(pg::Side::source, p.dbs.name());
        late->exec("BEGIN");
        late->exec("UPDATE orders SET v = 999999, updated_at = now() WHERE id = 1");
        late->exec("INSERT INTO orders (id, v) VALUES (50001, 1)");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        // Meanwhile later rows commit, and a sync moves the mark past them.
        p.src().exec("INSERT INTO orders (id, v) VALUES (50002, 2)");
        REQUIRE_SYNC(p, 0);
        CHECK(std::stoll(scalar(p.dst(), "SELECT count(*) FROM replica.orders WHERE id = 50002")) ==
              1);
        late->exec("COMMIT");

        REQUIRE_SYNC(p, 0);
        CHECK(scalar(p.dst(), "SELECT v FROM replica.orders WHERE id = 1") == "999999");
        CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.orders WHERE id = 50001") == "1");
        CHECK(p.equal("orders"));
    }
}

TEST_CASE("incremental: kill -9 at any point - then a rerun - converges with no duplicates") {
    Pipeline p("inc_kill");
    seed_orders(p);
    REQUIRE_SYNC(p, 0);
    int round = 0;
    for (std::string point :
         {"incremental-after-copy", "incremental-before-commit", "before-state-save"}) {
        CAPTURE(point);
        ++round;
        p.src().exec(fmt::format(
            "UPDATE orders SET v = v + 1, updated_at = now() WHERE id % 7 = {}", round));
        p.src().exec(fmt::format("INSERT INTO orders (id, v) VALUES ({}, 0)", 20000 + round));
        auto state_before = p.dir.read("sync-state/orders.json");
        auto r = p.sync({{"PGINCR_FAULT", point}});
        CHECK(r.signal == SIGKILL);
        CHECK(p.dir.read("sync-state/orders.json") == state_before);
        REQUIRE_SYNC(p, 0);
        CHECK(p.equal("orders"));
        CHECK(scalar(p.dst(), "SELECT count(*) - count(DISTINCT id) FROM replica.orders") == "0");
        CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.orders_stg") == "0");
    }
}

TEST_CASE("incremental: of two concurrent syncs - one exits 3") {
    Pipeline p("inc_lock");
    p.src().exec("CREATE TABLE orders (id bigint PRIMARY KEY, pad text, updated_at timestamptz "
                 "NOT NULL DEFAULT now())");
    p.src().exec("INSERT INTO orders (id, pad) SELECT g, repeat('x', 300) FROM "
                 "generate_series(1, 300000) g");
    p.tables(orders_config);
    bp::ipstream err;
    auto first = start_sync(p, err);
    REQUIRE(wait_for_copy(p.dst()));
    auto second = p.sync();
    CHECK(second.exit_code == 3);
    CHECK(second.err.find("another pgincr run") != std::string::npos);
    std::string sink((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
    first.wait();
    CHECK(first.exit_code() == 0);
    CHECK(p.equal("orders"));

    // Another host (another state directory) syncing the same destination schema.
    WorkDir other;
    other.write_env(p.dbs, "public", "replica");
    other.write("tables-config.json", orders_config);
    auto holder = admin(pg::Side::dest, p.dbs.name());
    holder->exec("SELECT pg_advisory_lock(1885825390, hashtext('replica'))");
    auto blocked = other.run({"sync"});
    CHECK(blocked.exit_code == 3);
    CHECK(blocked.err.find("destination schema \"replica\"") != std::string::npos);
    CHECK(blocked.err.find("backend pid") != std::string::npos);

    // The same state directory, held by another process.
    int fd = ::open((p.dir.path() / "sync-state" / ".pgincr.lock").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    holder.reset();
    auto r = p.sync();
    CHECK(r.exit_code == 3);
    ::close(fd);
    REQUIRE_SYNC(p, 0);
}

TEST_CASE("incremental: a failing table does not stop the next one") {
    Pipeline p("inc_fail_next");
    seed_orders(p);
    p.tables(R"([{"name": "missing", "replication_key": "updated_at", "unique_cols": ["id"]},
                 {"name": "orders", "replication_key": "nope", "unique_cols": ["id"]},
                 {"name": "orders", "replication_key": "updated_at", "destination": "orders_ok"}])");
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("\"public\".\"missing\" does not exist") != std::string::npos);
    CHECK(r.err.find("replication_key column \"nope\" does not exist") != std::string::npos);
    CHECK(p.equal("orders", "orders_ok"));
}

TEST_CASE("incremental: state copied elsewhere and run under another TZ continues incrementally") {
    Pipeline p("inc_tz");
    seed_orders(p);
    p.src().exec("CREATE TABLE local_ts (id int PRIMARY KEY, updated_at timestamp NOT NULL DEFAULT "
                 "localtimestamp)");
    p.src().exec("INSERT INTO local_ts (id) SELECT generate_series(1, 100)");
    p.tables(R"([{"name": "orders", "replication_key": "updated_at"},
                 {"name": "local_ts", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);

    WorkDir moved;
    moved.write(".env", p.dir.read(".env"));
    moved.write("tables-config.json", p.dir.read("tables-config.json"));
    for (const char *f : {"orders.json", "local_ts.json"})
        moved.write(std::string("sync-state/") + f, p.dir.read(std::string("sync-state/") + f));
    p.src().exec("UPDATE orders SET v = 0, updated_at = now() WHERE id < 50");
    p.src().exec("INSERT INTO local_ts (id) VALUES (101)");
    auto r = moved.run({"sync"}, {{"TZ", "Pacific/Auckland"}, {"PGTZ", "America/Los_Angeles"}});
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    state::Store store(moved.path() / "sync-state");
    CHECK(store.load("orders")->last_sync->mode == "incremental");
    CHECK(store.load("local_ts")->last_sync->mode == "incremental");
    CHECK(p.equal("orders"));
    CHECK(p.equal("local_ts"));
}

TEST_CASE("incremental: the old tool's sync-state/<table>.txt is taken over - not reloaded") {
    Pipeline p("inc_legacy");
    seed_orders(p, 100);
    // What incremental-replication left behind: a key-less copy of the first 60 rows
    // and its cursor, max(updated_at) floored to ms plus 1 ms.
    p.dst().exec("CREATE SCHEMA replica");
    p.dst().exec("CREATE TABLE replica.orders (id bigint, v integer, note text, updated_at "
                 "timestamp with time zone)");
    p.dst().exec("INSERT INTO replica.orders SELECT g, g, 'n' || g, '2025-01-01'::timestamptz + g "
                 "* interval '1 minute' FROM generate_series(1, 60) g");
    p.dir.write("sync-state/orders.txt", "2025-01-01T01:00:00.001Z\n");
    p.dst().exec(
        "INSERT INTO replica.orders VALUES (1000000, 0, 'only in the destination', now())");
    REQUIRE_SYNC(p, 0);
    auto st = p.state("orders");
    REQUIRE(st);
    CHECK(st->last_sync->mode == "incremental");
    // A reload would have removed the destination-only row.
    CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.orders WHERE id = 1000000") == "1");
    p.dst().exec("DELETE FROM replica.orders WHERE id = 1000000");
    CHECK(p.equal("orders"));
}

TEST_CASE("incremental: SIGTERM aborts the current table cleanly and exits 4") {
    Pipeline p("inc_sigterm");
    p.src().exec("CREATE TABLE orders (id bigint PRIMARY KEY, pad text, updated_at timestamptz "
                 "NOT NULL DEFAULT now())");
    p.src().exec("INSERT INTO orders (id, pad) SELECT g, 'x' FROM generate_series(1, 1000) g");
    p.tables(orders_config);
    REQUIRE_SYNC(p, 0);
    auto before = digest(p.dst(), "replica.orders");
    p.src().exec("INSERT INTO orders (id, pad) SELECT g, repeat('y', 300) FROM "
                 "generate_series(1001, 300000) g");
    REQUIRE(p.run({"reset", "orders"}).exit_code == 0);
    auto state_before = p.dir.read("sync-state/orders.json");
    bp::ipstream err;
    auto child = start_sync(p, err);
    REQUIRE(wait_for_copy(p.dst()));
    ::kill(child.id(), SIGTERM);
    std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
    child.wait();
    INFO(text);
    CHECK(child.exit_code() == 4);
    CHECK(text.find("interrupted") != std::string::npos);
    CHECK(digest(p.dst(), "replica.orders") == before);
    auto st = p.state("orders");
    CHECK(st->reset_requested);
    CHECK(st->watermark == state::from_json(state_before, "x").watermark);
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders"));
}

TEST_CASE("status: shows the mark and the last sync and the lag - --json parses") {
    Pipeline p("inc_status");
    seed_orders(p);
    REQUIRE_SYNC(p, 0);
    auto r = p.run({"status"});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("orders") != std::string::npos);
    CHECK(r.out.find("incremental-deduped") != std::string::npos);
    auto j = p.run({"status", "--json"});
    CHECK(j.exit_code == 0);
    CHECK(j.out.find("\"watermark\": \"") != std::string::npos);
    CHECK(j.out.find("\"rows_at_or_after_mark\": ") != std::string::npos);
    CHECK(j.out.find("\"result\": \"ok\"") != std::string::npos);
}
