// Per-table options end to end: mode, destination, filter, lookback_seconds, indexes,
// their validation, and how status reports them.
#include "support/http_receiver.hpp"
#include "support/pipeline.hpp"

#include <csignal>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

using namespace pgincr;
using namespace pgincr::test;

namespace {

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

// orders, spread over two regions, with a customer name that needs quoting. With
// `log`, a trigger records every version the source ever held in orders_log: the
// truth an append-mode destination is compared with.
void seed_orders(Pipeline &p, int rows = 300, bool log = false) {
    p.src().exec("CREATE TABLE orders (id bigint PRIMARY KEY, region text NOT NULL, customer "
                 "text, status text NOT NULL DEFAULT 'open', v int, "
                 "updated_at timestamptz NOT NULL DEFAULT now())");
    p.src().exec("CREATE INDEX orders_updated_at ON orders (updated_at)");
    if (log) {
        p.src().exec("CREATE TABLE orders_log (id bigint, v int, updated_at timestamptz)");
        p.src().exec("CREATE FUNCTION log_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                     "INSERT INTO orders_log VALUES (NEW.id, NEW.v, NEW.updated_at); RETURN NEW; "
                     "END $$");
        p.src().exec("CREATE TRIGGER log_order AFTER INSERT OR UPDATE ON orders FOR EACH ROW "
                     "EXECUTE FUNCTION log_order()");
    }
    p.src().exec(fmt::format(
        "INSERT INTO orders (id, region, customer, status, v, updated_at) SELECT g, "
        "CASE WHEN g % 2 = 0 THEN 'EU' ELSE 'US' END, "
        "CASE WHEN g % 10 = 0 THEN 'O''Brien' ELSE 'c' || g END, "
        "CASE WHEN g % 7 = 0 THEN 'cancelled' ELSE 'open' END, g, "
        "'2025-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, {}) g",
        rows));
}

// An append-mode destination holds every version the source's log recorded, each
// exactly once.
void check_versions(Pipeline &p, const std::string &dest) {
    auto want = digest(p.src(), "(SELECT DISTINCT id, v, updated_at FROM orders_log)");
    auto got = digest(p.dst(), fmt::format("(SELECT id, v, updated_at FROM {})", p.dst_rel(dest)));
    INFO("versions in the source's log ", want.rows, "; destination rows ", got.rows);
    CHECK(got.rows == want.rows);
    CHECK(got == want);
    CHECK(scalar(p.dst(), fmt::format("SELECT count(*) - count(DISTINCT (id, updated_at)) FROM {}",
                                      p.dst_rel(dest))) == "0");
}

long long count(pg::Connection &conn, const std::string &sql) {
    return std::stoll(scalar(conn, sql));
}

// Source rows matching `where` and a destination table hold the same rows.
bool equal_subset(Pipeline &p, const std::string &where, const std::string &dest) {
    auto a = digest(p.src(), fmt::format("(SELECT * FROM orders WHERE {})", where));
    auto b = digest(p.dst(), p.dst_rel(dest));
    INFO("source rows ", a.rows, "; destination ", dest, " rows ", b.rows);
    CHECK(a.rows == b.rows);
    return a == b;
}

} // namespace

TEST_CASE("options: incremental-append keeps every version of a row") {
    Pipeline p("opt_append");
    seed_orders(p, 300, true);
    p.tables(R"([{"name": "orders", "replication_key": "updated_at",
                  "mode": "incremental-append"}])");
    REQUIRE_SYNC(p, 0);
    CHECK(p.dst_count("orders") == 300);
    check_versions(p, "orders");

    // One row updated twice, with a sync in between: three versions.
    p.src().exec("UPDATE orders SET v = 1001, updated_at = now() WHERE id = 1");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->mode == "incremental");
    CHECK(p.state("orders")->last_sync->rows_merged == 1);
    p.src().exec("UPDATE orders SET v = 1002, updated_at = now() WHERE id = 1");
    p.src().exec("INSERT INTO orders (id, region, v) VALUES (301, 'EU', 301)");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->rows_merged == 2);
    CHECK(scalar(p.dst(), "SELECT string_agg(v::text, ',' ORDER BY updated_at) FROM "
                          "replica.orders WHERE id = 1") == "1,1001,1002");
    CHECK(count(p.dst(), "SELECT count(*) FROM replica.orders WHERE id = 301") == 1);
    CHECK(p.dst_count("orders") == 303);
    check_versions(p, "orders");

    // The newest version of each row is the source.
    auto latest = digest(p.dst(), "(SELECT DISTINCT ON (id) * FROM replica.orders ORDER BY id, "
                                  "updated_at DESC)");
    CHECK(latest == digest(p.src(), "orders"));

    // The unique index is on the unique columns plus the key.
    CHECK(scalar(p.dst(), "SELECT string_agg(pg_get_indexdef(indexrelid), '; ') FROM pg_index "
                          "WHERE indrelid = 'replica.orders'::regclass AND indisunique")
              .find("(id, updated_at)") != std::string::npos);
}

TEST_CASE("options: incremental-append is idempotent under the re-read window and lookback") {
    Pipeline p("opt_append_reread");
    seed_orders(p, 300, true);
    p.tables(R"([{"name": "orders", "replication_key": "updated_at",
                  "mode": "incremental-append", "lookback_seconds": 3600}])");
    REQUIRE_SYNC(p, 0);
    p.src().exec("UPDATE orders SET v = -v, updated_at = now() WHERE id % 10 = 0");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->rows_merged == 30);

    // The lookback re-reads those rows on every run: they are not appended again.
    REQUIRE_SYNC(p, 0);
    auto st = p.state("orders");
    CHECK(st->last_sync->rows_copied >= 30);
    CHECK(st->last_sync->rows_merged == 0);
    check_versions(p, "orders");

    // A transaction held open pins the mark at its start: later commits are re-read on
    // every sync until it ends, and still appended once.
    auto late = admin(pg::Side::source, p.dbs.name());
    late->exec("BEGIN");
    late->exec("UPDATE orders SET v = 5555, updated_at = now() WHERE id = 5");
    p.src().exec("UPDATE orders SET v = 7777, updated_at = now() WHERE id IN (7, 8)");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->rows_merged == 2);
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->rows_copied >= 2);
    CHECK(p.state("orders")->last_sync->rows_merged == 0);
    late->exec("COMMIT");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->rows_merged == 1);
    CHECK(count(p.dst(), "SELECT count(*) FROM replica.orders WHERE v = 5555") == 1);
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->rows_merged == 0);
    check_versions(p, "orders");
}

TEST_CASE("options: incremental-append under kill -9 then a rerun has no duplicates") {
    Pipeline p("opt_append_kill");
    seed_orders(p, 300, true);
    p.tables(R"([{"name": "orders", "replication_key": "updated_at",
                  "mode": "incremental-append"}])");
    for (std::string point : {"load-after-copy", "load-before-commit"}) {
        CAPTURE(point);
        auto r = p.sync({{"PGINCR_FAULT", point}});
        CHECK(r.signal == SIGKILL);
    }
    REQUIRE_SYNC(p, 0);
    check_versions(p, "orders");

    int round = 0;
    for (std::string point :
         {"incremental-after-copy", "incremental-before-commit", "before-state-save"}) {
        CAPTURE(point);
        ++round;
        p.src().exec(fmt::format(
            "UPDATE orders SET v = v + 1000, updated_at = now() WHERE id % 7 = {}", round));
        p.src().exec(
            fmt::format("INSERT INTO orders (id, region, v) VALUES ({}, 'EU', 0)", 20000 + round));
        auto state_before = p.dir.read("sync-state/orders.json");
        auto r = p.sync({{"PGINCR_FAULT", point}});
        CHECK(r.signal == SIGKILL);
        CHECK(p.dir.read("sync-state/orders.json") == state_before);
        REQUIRE_SYNC(p, 0);
        check_versions(p, "orders");
        CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.orders_stg") == "0");
        // And once more: nothing new, nothing appended.
        REQUIRE_SYNC(p, 0);
        CHECK(p.state("orders")->last_sync->rows_merged == 0);
        check_versions(p, "orders");
    }
}

TEST_CASE("options: full-refresh reloads the whole table on every run") {
    Pipeline p("opt_full");
    seed_orders(p);
    // No primary key and no usable key: only full-refresh can sync it.
    p.src().exec("CREATE TABLE codes (code text, label text)");
    p.src().exec("INSERT INTO codes SELECT 'c' || g, 'label ' || g FROM generate_series(1, 50) g");
    p.tables(R"([{"name": "codes", "mode": "full-refresh"},
                 {"name": "orders", "replication_key": "updated_at", "mode": "full-refresh"},
                 {"name": "orders", "mode": "full-refresh", "destination": "orders_eu",
                  "filter": {"where": "region = $1", "params": ["EU"]}}])");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("codes"));
    CHECK(p.equal("orders"));
    CHECK(equal_subset(p, "region = 'EU'", "orders_eu"));
    CHECK(p.state("codes")->last_sync->mode == "initial");
    CHECK_FALSE(p.state("codes")->watermark);

    // Deletes, and changes that leave the key alone or move it back, all arrive.
    p.src().exec("DELETE FROM codes WHERE code IN ('c1', 'c2', 'c3')");
    p.src().exec("UPDATE codes SET label = 'changed' WHERE code = 'c10'");
    p.src().exec("INSERT INTO codes VALUES ('new', NULL), (NULL, 'no code')");
    p.src().exec("DELETE FROM orders WHERE id % 5 = 0");
    p.src().exec("UPDATE orders SET v = -1 WHERE id = 1");
    p.src().exec("UPDATE orders SET v = -2, updated_at = '2000-01-01' WHERE id = 2");
    REQUIRE_SYNC(p, 0);
    for (std::string t : {"codes", "orders", "orders_eu"}) {
        CAPTURE(t);
        auto st = p.state(t);
        REQUIRE(st);
        CHECK(st->last_sync->mode == "reset");
        CHECK(st->last_sync->result == "ok");
    }
    CHECK(p.equal("codes"));
    CHECK(p.equal("orders"));
    CHECK(equal_subset(p, "region = 'EU'", "orders_eu"));
    CHECK(p.dst_count("codes") == 49);
    CHECK(p.state("codes")->last_sync->rows_copied == 49);

    // A second run with no changes still reloads, and stays equal.
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->mode == "reset");
    CHECK(p.equal("orders"));
}

TEST_CASE("options: destination names the table and keys the state") {
    Pipeline p("opt_destination");
    seed_orders(p);
    p.tables(R"([{"name": "orders", "replication_key": "updated_at", "destination": "orders_copy"},
                 {"name": "orders", "replication_key": "updated_at", "destination": "Orders Two"}])");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders", "orders_copy"));
    CHECK(p.equal("orders", "Orders Two"));
    CHECK(scalar(p.dst(), "SELECT to_regclass('replica.orders') IS NULL") == "t");
    CHECK(scalar(p.dst(), "SELECT to_regclass('replica.orders_copy_stg') IS NOT NULL") == "t");
    CHECK_FALSE(p.state("orders"));
    REQUIRE(p.state("orders_copy"));
    CHECK(p.state("orders_copy")->source_table == "orders");
    CHECK(p.state("orders_copy")->destination == "orders_copy");
    REQUIRE(p.state("Orders Two"));

    // Each destination has its own state: a reset of one leaves the other incremental.
    p.src().exec("UPDATE orders SET v = -v, updated_at = now() WHERE id <= 20");
    auto reset = p.run({"reset", "Orders Two"});
    INFO(reset.all());
    CHECK(reset.exit_code == 0);
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders_copy")->last_sync->mode == "incremental");
    CHECK(p.state("orders_copy")->last_sync->rows_merged == 20);
    CHECK(p.state("Orders Two")->last_sync->mode == "reset");
    CHECK(p.equal("orders", "orders_copy"));
    CHECK(p.equal("orders", "Orders Two"));

    // --table selects by destination.
    p.src().exec("UPDATE orders SET v = 0, updated_at = now() WHERE id = 100");
    auto one = p.run({"sync", "--table", "orders_copy"});
    INFO(one.all());
    CHECK(one.exit_code == 0);
    CHECK(scalar(p.dst(), "SELECT v FROM replica.orders_copy WHERE id = 100") == "0");
    CHECK(scalar(p.dst(), "SELECT v FROM replica.\"Orders Two\" WHERE id = 100") == "100");
}

TEST_CASE("options: filter per region into separate destinations whose union equals the source") {
    Pipeline p("opt_filter_regions");
    seed_orders(p);
    p.tables(R"([{"name": "orders", "replication_key": "updated_at", "destination": "orders_eu",
                  "filter": {"where": "region = $1", "params": ["EU"]}},
                 {"name": "orders", "replication_key": "updated_at", "destination": "orders_us",
                  "filter": {"where": "region = $1", "params": ["US"]}},
                 {"name": "orders", "replication_key": "updated_at", "destination": "eu_open",
                  "filter": {"where": "region = $1 AND status <> $2",
                             "params": ["EU", "cancelled"]}}])");
    auto union_equals_source = [&] {
        auto all = digest(p.src(), "orders");
        auto both = digest(p.dst(), "(SELECT * FROM replica.orders_eu UNION ALL SELECT * FROM "
                                    "replica.orders_us)");
        INFO("source rows ", all.rows, "; union rows ", both.rows);
        CHECK(all.rows == both.rows);
        return all == both;
    };
    REQUIRE_SYNC(p, 0);
    CHECK(p.dst_count("orders_eu") == 150);
    CHECK(equal_subset(p, "region = 'EU'", "orders_eu"));
    CHECK(equal_subset(p, "region = 'US'", "orders_us"));
    CHECK(equal_subset(p, "region = 'EU' AND status <> 'cancelled'", "eu_open"));
    CHECK(union_equals_source());
    // Each destination's mark is its own subset's largest key.
    CHECK(*p.state("orders_eu")->watermark != *p.state("orders_us")->watermark);

    for (int round = 1; round <= 2; ++round) {
        CAPTURE(round);
        p.src().exec(fmt::format("UPDATE orders SET v = v + {}, updated_at = now() WHERE id % 3 "
                                 "= 0",
                                 round * 1000));
        p.src().exec(fmt::format(
            "UPDATE orders SET status = 'cancelled', updated_at = now() WHERE id = {}", round * 2));
        p.src().exec(fmt::format("INSERT INTO orders (id, region, customer, v) SELECT g, CASE WHEN "
                                 "g % 2 = 0 THEN 'EU' ELSE 'US' END, 'new', g FROM "
                                 "generate_series({}, {}) g",
                                 1000 * round, 1000 * round + 9));
        REQUIRE_SYNC(p, 0);
        for (const char *t : {"orders_eu", "orders_us", "eu_open"})
            CHECK(p.state(t)->last_sync->mode == "incremental");
        CHECK(equal_subset(p, "region = 'EU'", "orders_eu"));
        CHECK(equal_subset(p, "region = 'US'", "orders_us"));
        CHECK(union_equals_source());
    }
    // A row that stops matching the filter stays behind, as a deleted row does.
    CHECK(count(p.dst(), "SELECT count(*) FROM replica.eu_open WHERE id IN (2, 4)") == 2);
}

TEST_CASE("options: filter parameters are bound and never spliced") {
    Pipeline p("opt_filter_bound");
    seed_orders(p);
    // A quote in a value, placeholders inside a string and a comment, a number, an array.
    p.tables(R"json([
        {"name": "orders", "replication_key": "updated_at", "destination": "obrien",
         "filter": {"where": "customer = $1 AND customer <> '$2' -- $3\n", "params": ["O'Brien"]}},
        {"name": "orders", "replication_key": "updated_at", "destination": "injected",
         "filter": {"where": "customer = $1", "params": ["x' OR '1'='1"]}},
        {"name": "orders", "replication_key": "updated_at", "destination": "big",
         "filter": {"where": "v > $1 AND region = ANY ($2::text[])",
                    "params": [250, "{EU,\"Not \\\"a\\\" region\"}"]}}])json");
    REQUIRE_SYNC(p, 0);
    CHECK(p.dst_count("obrien") == 30);
    CHECK(equal_subset(p, "customer = 'O''Brien'", "obrien"));
    CHECK(p.dst_count("injected") == 0);
    CHECK(equal_subset(p, "v > 250 AND region = 'EU'", "big"));
    CHECK(p.dst_count("big") == 25);

    p.src().exec("INSERT INTO orders (id, region, customer, v) VALUES (501, 'US', 'O''Brien', 1), "
                 "(502, 'US', 'x'' OR ''1''=''1', 2), (503, 'EU', 'z', 999)");
    p.src().exec("UPDATE orders SET v = -10, updated_at = now() WHERE id = 10");
    REQUIRE_SYNC(p, 0);
    CHECK(equal_subset(p, "customer = 'O''Brien'", "obrien"));
    CHECK(p.dst_count("obrien") == 31);
    CHECK(equal_subset(p, "customer = 'x'' OR ''1''=''1'", "injected"));
    CHECK(p.dst_count("injected") == 1);
    CHECK(equal_subset(p, "v > 250 AND region = 'EU'", "big"));
}

TEST_CASE("options: lookback_seconds picks up a row written below the mark") {
    Pipeline p("opt_lookback");
    seed_orders(p);
    p.tables(R"([{"name": "orders", "replication_key": "updated_at", "destination": "with_lookback",
                  "lookback_seconds": 3600},
                 {"name": "orders", "replication_key": "updated_at",
                  "destination": "without_lookback"}])");
    REQUIRE_SYNC(p, 0);
    auto mark = *p.state("with_lookback")->watermark;
    CHECK(mark == *p.state("without_lookback")->watermark);
    // A client whose clock runs 10 minutes behind writes its key below the mark.
    p.src().exec(fmt::format("INSERT INTO orders (id, region, v, updated_at) VALUES "
                             "(9001, 'EU', 1, '{0}'::timestamptz - interval '10 minutes'), "
                             "(9002, 'EU', 2, '{0}'::timestamptz - interval '2 hours')",
                             mark));
    p.src().exec(fmt::format("UPDATE orders SET v = -1, updated_at = '{}'::timestamptz - interval "
                             "'30 minutes' WHERE id = 3",
                             mark));
    REQUIRE_SYNC(p, 0);
    CHECK(count(p.dst(), "SELECT count(*) FROM replica.with_lookback WHERE id = 9001") == 1);
    CHECK(scalar(p.dst(), "SELECT v FROM replica.with_lookback WHERE id = 3") == "-1");
    // Beyond the window, and without one, such rows are not seen.
    CHECK(count(p.dst(), "SELECT count(*) FROM replica.with_lookback WHERE id = 9002") == 0);
    CHECK(count(p.dst(), "SELECT count(*) FROM replica.without_lookback WHERE id = 9001") == 0);
    CHECK(scalar(p.dst(), "SELECT v FROM replica.without_lookback WHERE id = 3") == "3");
    // The re-read never moves the mark back.
    CHECK(*p.state("with_lookback")->watermark == mark);
}

TEST_CASE("options: indexes all rebuilds the source's other indexes as plain ones") {
    Pipeline p("opt_indexes");
    seed_orders(p);
    p.src().exec("CREATE UNIQUE INDEX orders_customer_id ON orders (customer, id)");
    p.src().exec("CREATE INDEX orders_lower_customer ON orders (lower(customer))");
    p.src().exec("CREATE INDEX orders_open ON orders (region) WHERE status = 'open'");
    p.tables(R"([{"name": "orders", "replication_key": "updated_at", "destination": "all_idx",
                  "indexes": "all"},
                 {"name": "orders", "replication_key": "updated_at", "destination": "unique_idx"},
                 {"name": "orders", "replication_key": "updated_at", "destination": "uniq_explicit",
                  "indexes": "unique"},
                 {"name": "orders", "replication_key": "updated_at", "destination": "append_all",
                  "indexes": "all", "mode": "incremental-append"}])");
    auto indexes = [&](const std::string &table) {
        return scalar(p.dst(),
                      fmt::format("SELECT string_agg(d, '; ' ORDER BY d) FROM (SELECT CASE WHEN "
                                  "i.indisunique THEN 'unique ' ELSE '' END || "
                                  "regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', "
                                  "'') AS d FROM pg_index i WHERE i.indrelid = '{}'::regclass) x",
                                  p.dst_rel(table)));
    };
    auto check_all = [&] {
        auto all = indexes("all_idx");
        INFO(all);
        CHECK(count(p.dst(), "SELECT count(*) FROM pg_index WHERE indrelid = "
                             "'replica.all_idx'::regclass AND indisunique") == 1);
        CHECK(contains(all, "unique btree (id) NULLS NOT DISTINCT"));
        CHECK(contains(all, "btree (updated_at)"));
        CHECK(contains(all, "btree (customer, id)"));
        CHECK(contains(all, "btree (lower(customer))"));
        CHECK(contains(all, "btree (region) WHERE (status = 'open'::text)"));
        // The primary key is the unique index already: no second, plain copy of it.
        CHECK(count(p.dst(), "SELECT count(*) FROM pg_index WHERE indrelid = "
                             "'replica.all_idx'::regclass") == 5);
        // In append mode the unique index has the key too, so the plain one stays.
        auto append = indexes("append_all");
        INFO(append);
        CHECK(contains(append, "unique btree (id, updated_at) NULLS NOT DISTINCT"));
        CHECK(contains(append, "; btree (id);"));
        CHECK(count(p.dst(), "SELECT count(*) FROM pg_index WHERE indrelid = "
                             "'replica.append_all'::regclass") == 6);
        for (std::string t : {"unique_idx", "uniq_explicit"}) {
            CAPTURE(t);
            CHECK(indexes(t) == "unique btree (id) NULLS NOT DISTINCT");
        }
    };
    REQUIRE_SYNC(p, 0);
    check_all();
    // The shadow-swap reload rebuilds them the same way, and merges still work.
    REQUIRE(p.run({"reset", "all_idx"}).exit_code == 0);
    p.src().exec("UPDATE orders SET customer = 'O''Brien', updated_at = now() WHERE id < 5");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("all_idx")->last_sync->mode == "reset");
    check_all();
    p.src().exec("UPDATE orders SET customer = 'x', updated_at = now() WHERE id < 50");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders", "all_idx"));
    CHECK(p.equal("orders", "unique_idx"));
}

TEST_CASE("options: invalid values exit 2 naming the file and the entry and the key") {
    Pipeline p("opt_invalid");
    seed_orders(p);
    const std::string good =
        R"({"name": "orders", "replication_key": "updated_at", "destination": "first"})";
    struct Case {
        std::string what;
        std::string entry; // the second entry of tables-config.json
        std::string key;
    };
    const std::vector<Case> cases = {
        {"unknown mode", R"({"name": "orders", "replication_key": "updated_at", "mode": "append"})",
         "\"mode\""},
        {"mode not a string", R"({"name": "orders", "replication_key": "updated_at", "mode": 1})",
         "\"mode\""},
        {"filter not an object",
         R"({"name": "orders", "replication_key": "updated_at", "filter": "region = 'EU'"})",
         "\"filter\""},
        {"filter without where",
         R"({"name": "orders", "replication_key": "updated_at", "filter": {"params": ["EU"]}})",
         "\"filter\""},
        {"fewer params than placeholders",
         R"({"name": "orders", "replication_key": "updated_at",
             "filter": {"where": "region = $1 AND status <> $2", "params": ["EU"]}})",
         "\"filter\""},
        {"more params than placeholders",
         R"({"name": "orders", "replication_key": "updated_at",
             "filter": {"where": "region = $1", "params": ["EU", "cancelled"]}})",
         "\"filter\""},
        {"placeholders without params",
         R"({"name": "orders", "replication_key": "updated_at",
             "filter": {"where": "region = $1"}})",
         "\"filter\""},
        {"a param that is an object",
         R"({"name": "orders", "replication_key": "updated_at",
             "filter": {"where": "region = $1", "params": [{"a": 1}]}})",
         "\"filter\""},
        {"negative lookback_seconds",
         R"({"name": "orders", "replication_key": "updated_at", "lookback_seconds": -5})",
         "\"lookback_seconds\""},
        {"fractional lookback_seconds",
         R"({"name": "orders", "replication_key": "updated_at", "lookback_seconds": 1.5})",
         "\"lookback_seconds\""},
        {"lookback_seconds as a string",
         R"({"name": "orders", "replication_key": "updated_at", "lookback_seconds": "60"})",
         "\"lookback_seconds\""},
        {"bad indexes", R"({"name": "orders", "replication_key": "updated_at", "indexes": "none"})",
         "\"indexes\""},
        {"missing replication_key in the default mode", R"({"name": "orders"})",
         "\"replication_key\""},
        {"missing replication_key in incremental-append",
         R"({"name": "orders", "mode": "incremental-append"})", "\"replication_key\""},
        {"empty destination",
         R"({"name": "orders", "replication_key": "updated_at", "destination": ""})",
         "\"destination\""},
        {"duplicate destination",
         R"({"name": "orders", "replication_key": "updated_at", "destination": "first"})",
         "\"destination\""},
        {"a source name equal to an earlier destination",
         R"({"name": "first", "replication_key": "updated_at"})", "\"destination\""},
    };
    for (const auto &c : cases) {
        CAPTURE(c.what);
        p.tables("[" + good + ",\n " + c.entry + "]");
        for (std::string cmd : {"sync", "check", "status"}) {
            CAPTURE(cmd);
            auto r = p.run({cmd});
            INFO(r.all());
            CHECK(r.exit_code == 2);
            CHECK(contains(r.err, "tables-config.json"));
            CHECK(contains(r.err, "entry 2"));
            CHECK(contains(r.err, c.key));
        }
        CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'replica'") ==
              "0");
        CHECK_FALSE(std::filesystem::exists(p.dir.path() / "sync-state" / "first.json"));
    }
}

TEST_CASE("options: status and the webhook show each entry's mode and destination") {
    HttpReceiver receiver({200});
    Pipeline p("opt_status", "public", "replica", fmt::format("WEBHOOK_URL={}\n", receiver.url()));
    seed_orders(p);
    p.tables(R"([{"name": "orders", "replication_key": "updated_at"},
                 {"name": "orders", "replication_key": "updated_at", "destination": "orders_hist",
                  "mode": "incremental-append"},
                 {"name": "orders", "destination": "orders_full", "mode": "full-refresh"}])");
    auto before = p.run({"status"});
    INFO(before.all());
    CHECK(before.exit_code == 0);
    CHECK(contains(before.out, "orders_hist"));
    REQUIRE_SYNC(p, 0);

    auto r = p.run({"status"});
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    struct Want {
        std::string destination, mode;
    };
    const std::vector<Want> want = {{"orders", "incremental-deduped"},
                                    {"orders_hist", "incremental-append"},
                                    {"orders_full", "full-refresh"}};
    // One line per entry, starting with its destination and then its mode.
    std::vector<std::string> lines;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    REQUIRE(lines.size() >= 4);
    for (std::size_t i = 0; i < want.size(); ++i) {
        CAPTURE(want[i].destination);
        std::istringstream words(lines[i + 1]);
        std::string dest, mode;
        words >> dest >> mode;
        CHECK(dest == want[i].destination);
        CHECK(mode == want[i].mode);
    }

    auto j = p.run({"status", "--json"});
    INFO(j.all());
    REQUIRE(j.exit_code == 0);
    auto doc = nlohmann::json::parse(j.out);
    REQUIRE(doc.size() == 3);
    for (std::size_t i = 0; i < want.size(); ++i) {
        CAPTURE(want[i].destination);
        CHECK(doc[i]["name"] == "orders");
        CHECK(doc[i]["destination"] == want[i].destination);
        CHECK(doc[i]["mode"] == want[i].mode);
        CHECK(doc[i]["last_sync"]["result"] == "ok");
    }
    CHECK(doc[2]["watermark"].is_null());
    CHECK(doc[1]["watermark"].is_string());

    auto requests = receiver.requests();
    REQUIRE(requests.size() == 1);
    auto body = nlohmann::json::parse(requests[0].body);
    REQUIRE(body["tables"].size() == 3);
    for (std::size_t i = 0; i < want.size(); ++i) {
        CAPTURE(want[i].destination);
        const auto &t = body["tables"][i];
        CHECK(t["name"] == "orders");
        CHECK(t["destination"] == want[i].destination);
        CHECK(t["config_mode"] == want[i].mode);
        CHECK(t["mode"] == "initial");
        CHECK(t["status"] == "ok");
    }
}

TEST_CASE("options: a destination never collides with a staging table") {
    Pipeline p("opt_stg_names");
    seed_orders(p);
    // 63 bytes, PostgreSQL's limit: "<name>_stg" would be truncated back to the name.
    const std::string long_name(63, 'l');
    p.src().exec(fmt::format("CREATE TABLE {} (id int PRIMARY KEY, updated_at timestamptz NOT "
                             "NULL DEFAULT now())",
                             long_name));
    p.src().exec(fmt::format("INSERT INTO {} (id) SELECT generate_series(1, 10)", long_name));
    for (const std::string &tables : std::vector<std::string>{
             R"([{"name": "orders", "replication_key": "updated_at", "destination": "a"},
              {"name": "orders", "replication_key": "updated_at", "destination": "a_stg"}])",
             R"([{"name": "orders", "replication_key": "updated_at", "destination": "a_stg"},
              {"name": "orders", "replication_key": "updated_at", "destination": "a"}])",
             R"([{"name": "orders", "replication_key": "updated_at", "destination": "a"},
              {"name": ")" +
                 long_name + R"(", "replication_key": "updated_at"}])"}) {
        CAPTURE(tables);
        p.tables(tables);
        auto r = p.sync();
        INFO(r.all());
        CHECK(r.exit_code == 2);
        CHECK(contains(r.err, "tables-config.json: entry 2"));
        CHECK(contains(r.err, "\"destination\""));
        CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'replica'") ==
              "0");
    }
    // A shorter destination is the way out.
    p.tables(R"([{"name": ")" + long_name +
             R"(", "replication_key": "updated_at", "destination": "short"}])");
    REQUIRE_SYNC(p, 0);
    p.src().exec(fmt::format("INSERT INTO {} (id) VALUES (11)", long_name));
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal(long_name, "short"));
}

TEST_CASE("options: changing an entry's mode or filter or key reloads its destination") {
    Pipeline p("opt_change");
    seed_orders(p);
    const std::string deduped = R"({"name": "orders", "replication_key": "updated_at"})";
    const std::string append =
        R"({"name": "orders", "replication_key": "updated_at", "mode": "incremental-append"})";
    auto filtered = [](const std::string &region) {
        return R"({"name": "orders", "replication_key": "updated_at", "destination": "sub",
                   "filter": {"where": "region = $1", "params": [")" +
               region + R"("]}})";
    };
    p.tables("[" + deduped + ", " + filtered("EU") + "]");
    REQUIRE_SYNC(p, 0);
    CHECK(equal_subset(p, "region = 'EU'", "sub"));

    // The unique index and the rows kept differ by mode, and the rows by filter: the
    // destination built under the old options cannot be continued.
    p.tables("[" + append + ", " + filtered("US") + "]");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->mode == "reset");
    CHECK(p.state("sub")->last_sync->mode == "reset");
    CHECK(equal_subset(p, "region = 'US'", "sub"));
    p.src().exec("UPDATE orders SET v = -v, updated_at = now() WHERE id <= 10");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->mode == "incremental");
    CHECK(p.dst_count("orders") == 310);
    CHECK(equal_subset(p, "region = 'US'", "sub"));

    p.tables("[" + deduped + ", " + filtered("US") + "]");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->mode == "reset");
    CHECK(p.state("sub")->last_sync->mode == "incremental");
    CHECK(p.equal("orders"));

    // Another replication_key: the saved mark belongs to the old one.
    p.tables(R"([{"name": "orders", "replication_key": "id"}])");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->mode == "reset");
    CHECK(*p.state("orders")->watermark == "300");
    p.src().exec("INSERT INTO orders (id, region) VALUES (301, 'EU')");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("orders")->last_sync->mode == "incremental");
    CHECK(p.equal("orders"));
}
