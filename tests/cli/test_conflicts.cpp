// Conflict policies end to end: one scripted history of writes on both sides (a source
// update, a destination update of the same row with a newer or an older key, rows
// changed on one side only, a row deleted in the destination and updated in the
// source, one key inserted on both sides, a source delete of a row changed in the
// destination) gives each policy's documented result; manual fills
// <destination>_conflicts; a reload makes the destination equal the source again.
#include "support/pipeline.hpp"
#include "support/servers.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

using namespace pgincr;
using namespace pgincr::test;

namespace {

// id:v of every destination row, in id order.
std::string dest_rows(Pipeline &p) {
    return scalar(p.dst(), "SELECT string_agg(id || ':' || v, ' ' ORDER BY id) FROM replica.items");
}

void seed(Pipeline &p, const std::string &policy) {
    p.src().exec("CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL, updated_at "
                 "timestamptz NOT NULL)");
    p.src().exec("INSERT INTO items SELECT g, 'v' || g, now() - interval '1 hour' + g * interval "
                 "'1 second' FROM generate_series(1, 10) g");
    p.tables(fmt::format(R"([{{"name": "items", "replication_key": "updated_at",
                            "deletes": "hard", "max_delete_fraction": 1,
                            "conflict": "{}"}}])",
                         policy));
}

// The same history for every policy. The test's destination session is not pgincr's,
// so the trigger sees its writes.
void script(Pipeline &p) {
    p.src().exec("BEGIN");
    p.src().exec("UPDATE items SET v = 's' || id, updated_at = now() WHERE id IN (1, 3, 4, 7)");
    p.src().exec("DELETE FROM items WHERE id IN (5, 6)");
    p.src().exec("INSERT INTO items VALUES (100, 's100', now()), (101, 's101', now())");
    p.src().exec("COMMIT");
    auto &d = p.dst();
    d.exec("UPDATE replica.items SET v = 'd2' WHERE id = 2");
    // Changed in the destination with a newer key than the source's new version ...
    d.exec(
        "UPDATE replica.items SET v = 'd3', updated_at = now() + interval '1 hour' WHERE id = 3");
    // ... and with its old key, older than the source's new version.
    d.exec("UPDATE replica.items SET v = 'd4' WHERE id = 4");
    d.exec("UPDATE replica.items SET v = 'd5' WHERE id = 5");
    d.exec("DELETE FROM replica.items WHERE id = 7");
    d.exec("INSERT INTO replica.items VALUES (100, 'd100', now() - interval '2 hours'), "
           "(102, 'd102', now() - interval '2 hours')");
}

struct Expected {
    const char *policy;
    const char *rows;
    long long conflicts;
};

const Expected expected[] = {
    // The source's rows win; the delete check removes 5, 6 and the destination's 102.
    {"source_wins", "1:s1 2:d2 3:s3 4:s4 7:s7 8:v8 9:v9 10:v10 100:s100 101:s101", 0},
    // As source_wins, but row 3's destination version is newer (1 held back).
    {"newest_wins", "1:s1 2:d2 3:d3 4:s4 7:s7 8:v8 9:v9 10:v10 100:s100 101:s101", 1},
    // Every row changed in the destination stays as it is: 3, 4, 100 updated there, 7
    // deleted there, 5 kept although the source deleted it, 102 kept although the source
    // never had it. 6 (deleted in the source only) goes, 1 and 101 arrive.
    {"target_wins", "1:s1 2:d2 3:d3 4:d4 5:d5 8:v8 9:v9 10:v10 100:d100 101:s101 102:d102", 6},
    {"manual", "1:s1 2:d2 3:d3 4:d4 5:d5 8:v8 9:v9 10:v10 100:d100 101:s101 102:d102", 6},
};

} // namespace

TEST_CASE("conflicts: each policy on the same history of writes on both sides gives its "
          "documented result") {
    for (const auto &e : expected) {
        std::string policy = e.policy;
        CAPTURE(policy);
        Pipeline p("conflicts_" + policy);
        seed(p, policy);
        REQUIRE_SYNC(p, 0);
        bool keeps = policy == "target_wins" || policy == "manual";
        auto trigger = [&] {
            return scalar(p.dst(), "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
                                   "'replica.items'::regclass AND NOT tgisinternal");
        };
        CHECK(trigger() == (keeps ? "1" : "0"));
        CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_class WHERE relname = "
                              "'items_pgincr_touched'") == (keeps ? "1" : "0"));
        // pgincr's own writes (the load) are not taken for the destination's.
        if (keeps)
            CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.items_pgincr_touched") == "0");

        script(p);
        auto r = p.sync();
        INFO(r.all());
        REQUIRE(r.exit_code == 0);
        CHECK(dest_rows(p) == e.rows);
        CHECK(p.state("items")->last_sync->conflicts == e.conflicts);
        if (e.conflicts > 0)
            CHECK(r.err.find(fmt::format("{} conflicts", e.conflicts)) != std::string::npos);
        auto status = p.run({"status", "--json"});
        CHECK(status.out.find(fmt::format("\"conflicts\": {}", e.conflicts)) != std::string::npos);

        if (policy == "manual") {
            // Both versions of each conflict, its key and policy, for a person.
            CHECK(scalar(p.dst(),
                         "SELECT string_agg(key->>'id' || ':' || coalesce(source_row->>'v', "
                         "'-') || '/' || coalesce(dest_row->>'v', '-') || ':' || policy, "
                         "' ' ORDER BY (key->>'id')::int) FROM replica.items_conflicts") ==
                  "3:s3/d3:manual 4:s4/d4:manual 5:-/d5:manual 7:s7/-:manual "
                  "100:s100/d100:manual 102:-/d102:manual");
            CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.items_conflicts WHERE "
                                  "detected_at IS NULL") == "0");
        } else {
            CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_class WHERE relname = "
                                  "'items_conflicts'") == "0");
        }

        // Nothing new: rows read again at the mark are no new conflict, and nothing is
        // recorded twice.
        if (keeps) {
            REQUIRE_SYNC(p, 0);
            CHECK(p.state("items")->last_sync->conflicts == 0);
            CHECK(dest_rows(p) == e.rows);
            if (policy == "manual")
                CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.items_conflicts") == "6");
            // A new source version of a kept row is a new conflict.
            p.src().exec("UPDATE items SET v = 's3b', updated_at = now() WHERE id = 3");
            REQUIRE_SYNC(p, 0);
            CHECK(p.state("items")->last_sync->conflicts == 1);
            CHECK(dest_rows(p) == e.rows);
        }

        // A reload makes the destination equal the source, and forgets what was kept;
        // the trigger comes along to the new table.
        REQUIRE(p.run({"reset", "items"}).exit_code == 0);
        REQUIRE_SYNC(p, 0);
        CHECK(p.equal("items"));
        CHECK(trigger() == (keeps ? "1" : "0"));
        if (keeps) {
            CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.items_pgincr_touched") == "0");
            p.dst().exec("UPDATE replica.items SET v = 'd8' WHERE id = 8");
            CHECK(scalar(p.dst(), "SELECT string_agg(id::text, ',') FROM "
                                  "replica.items_pgincr_touched") == "8");
        }
        if (policy == "manual") // a person's records survive the reload
            CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.items_conflicts") == "7");
    }
}

TEST_CASE("conflicts: target_wins never takes over a table it did not create, and leaving the "
          "policy removes its trigger and side table") {
    Pipeline p("conflicts_owner");
    seed(p, "target_wins");
    p.dst().exec("CREATE SCHEMA replica");
    p.dst().exec("CREATE TABLE replica.items_pgincr_touched (mine int)");
    p.dst().exec("INSERT INTO replica.items_pgincr_touched VALUES (42)");
    auto r = p.sync();
    CHECK(r.exit_code == 1);
    CHECK(r.all().find("\"replica\".\"items_pgincr_touched\" exists and pgincr did not create "
                       "it") != std::string::npos);
    CHECK(scalar(p.dst(), "SELECT string_agg(mine::text, ',') FROM replica.items_pgincr_touched") ==
          "42");
    p.dst().exec("DROP TABLE replica.items_pgincr_touched");
    REQUIRE_SYNC(p, 0);
    p.dst().exec("UPDATE replica.items SET v = 'mine' WHERE id = 2");

    // verify --repair would have to undo what target_wins keeps: refused.
    auto v = p.run({"verify", "--repair"});
    CHECK(v.exit_code == 1);
    CHECK(v.all().find("keeps destination changes on purpose") != std::string::npos);
    CHECK(scalar(p.dst(), "SELECT v FROM replica.items WHERE id = 2") == "mine");

    p.tables(R"([{"name": "items", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
                          "'replica.items'::regclass AND NOT tgisinternal") == "0");
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_class WHERE relname = "
                          "'items_pgincr_touched'") == "0");
    CHECK(scalar(p.dst(),
                 "SELECT count(*) FROM pg_proc WHERE proname LIKE '\\_pgincr\\_touch\\_%'") == "0");
    // source_wins again: the source's version overwrites the next time it changes.
    p.src().exec("UPDATE items SET updated_at = now() WHERE id = 2");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("items"));
}

TEST_CASE("conflicts: a writer with no right on pgincr's side table is still recorded - a cdc "
          "entry refuses a policy with exit 2") {
    Pipeline p("conflicts_writer");
    seed(p, "manual");
    REQUIRE_SYNC(p, 0);
    // A role that may only update the table: the trigger's function runs as its owner.
    p.dst().exec("DROP ROLE IF EXISTS conflicts_app");
    p.dst().exec("CREATE ROLE conflicts_app");
    p.dst().exec("GRANT USAGE ON SCHEMA replica TO conflicts_app");
    p.dst().exec("GRANT SELECT, UPDATE ON replica.items TO conflicts_app");
    p.dst().exec("SET ROLE conflicts_app");
    p.dst().exec("UPDATE replica.items SET v = 'app' WHERE id = 4");
    p.dst().exec("RESET ROLE");
    p.dst().exec("REVOKE ALL ON replica.items FROM conflicts_app");
    p.dst().exec("REVOKE ALL ON SCHEMA replica FROM conflicts_app");
    p.dst().exec("DROP ROLE conflicts_app");
    CHECK(scalar(p.dst(), "SELECT string_agg(id::text, ',') FROM replica.items_pgincr_touched") ==
          "4");
    p.src().exec("UPDATE items SET v = 's4', updated_at = now() WHERE id = 4");
    REQUIRE_SYNC(p, 0);
    CHECK(scalar(p.dst(), "SELECT v FROM replica.items WHERE id = 4") == "app");
    CHECK(scalar(p.dst(), "SELECT source_row->>'v' || '/' || (dest_row->>'v') FROM "
                          "replica.items_conflicts") == "s4/app");

    // Resolved by a person: the row given back to pgincr takes the next source version.
    p.dst().exec("DELETE FROM replica.items_pgincr_touched WHERE id = 4");
    p.src().exec("UPDATE items SET v = 's4b', updated_at = now() WHERE id = 4");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("items"));

    // A conflict_column the table does not have fails the table, naming it.
    p.tables(R"([{"name": "items", "replication_key": "updated_at", "conflict": "newest_wins",
                  "conflict_column": "nope"}])");
    auto bad = p.sync();
    CHECK(bad.exit_code == 1);
    CHECK(bad.all().find("conflict_column \"nope\" is not a column") != std::string::npos);

    p.tables(R"([{"name": "items", "mode": "cdc", "conflict": "target_wins"}])");
    auto r = p.sync();
    CHECK(r.exit_code == 2);
    CHECK(r.all().find("not supported for cdc entries") != std::string::npos);
}

TEST_CASE("conflicts: a cdc entry with newest_wins keeps a destination row whose "
          "conflict_column is newer, and counts it") {
    std::string slot = "pgincr_t_conflicts_cdc";
    SlotCleanup cleanup{slot};
    Pipeline p("conflicts_cdc", "public", "replica", "PGINCR_SLOT=" + slot + "\n");
    p.src().exec("CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL, changed_at "
                 "timestamptz NOT NULL DEFAULT now())");
    p.src().exec("INSERT INTO items SELECT g, 'v' || g, now() - interval '1 hour' FROM "
                 "generate_series(1, 4) g");
    p.tables(R"([{"name": "items", "mode": "cdc", "conflict": "newest_wins",
                  "conflict_column": "changed_at"}])");
    REQUIRE_SYNC(p, 0);
    // Newer in the destination, older in the destination, and a NULL-free insert race.
    p.dst().exec("UPDATE replica.items SET v = 'd1', changed_at = now() + interval '1 hour' "
                 "WHERE id = 1");
    p.dst().exec("UPDATE replica.items SET v = 'd2' WHERE id = 2");
    p.src().exec("UPDATE items SET v = 's' || id, changed_at = now() WHERE id IN (1, 2, 3)");
    p.src().exec("DELETE FROM items WHERE id = 4"); // a delete carries nothing to compare
    p.src().exec("INSERT INTO items VALUES (5, 's5', now())");
    auto r = p.sync();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(dest_rows(p) == "1:d1 2:s2 3:s3 5:s5");
    CHECK(p.state("items")->last_sync->conflicts == 1);
    // Nothing is added to the destination for newest_wins.
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_class WHERE relname LIKE 'items\\_%'") == "0");

    REQUIRE(p.run({"reset", "items"}).exit_code == 0);
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("items"));
    try {
        p.src().exec(fmt::format("DROP PUBLICATION IF EXISTS {}", slot));
    } catch (...) {
    }
}
