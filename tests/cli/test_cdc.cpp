// The cdc mode end to end (`"mode": "cdc"`): the initial load under the slot's
// snapshot, every insert, update, delete and truncate streamed and applied once, across
// tables with composite and text keys, TOASTed values left unchanged, writes during
// loads and reloads, kill -9 at each step, columns changing while streaming, the
// source's problems said clearly, `pgincr teardown`, and a slot the server invalidated.
#include "pg/replication.hpp"
#include "support/pipeline.hpp"

#include <atomic>
#include <doctest/doctest.h>
#include <fmt/format.h>
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
