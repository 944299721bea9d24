// Deletes end to end: "deletes": "hard" | "soft" remove (or mark) exactly the rows the
// source no longer has, for bigint, text and composite keys, under the guard, with
// kill -9 in the middle, and never a row that a late or open transaction still holds.
#include "support/pipeline.hpp"

#include <csignal>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

using namespace pgincr;
using namespace pgincr::test;

namespace {

struct KeyKind {
    const char *name;
    const char *columns;  // the key's column definitions
    const char *unique;   // unique_cols as JSON
    const char *key_of_g; // the key's values for row g
    const char *key_list; // the key columns, for SQL
};

const KeyKind key_kinds[] = {
    {"bigint", "id bigint", R"(["id"])", "g", "id"},
    {"text", "code text", R"(["code"])", "'k-' || lpad(g::text, 6, '0')", "code"},
    {"composite", "region text, n int", R"(["region", "n"])",
     "(ARRAY['eu', 'us', 'ap'])[1 + g % 3], g", "region, n"},
};

// `rows` rows keyed by kind, with an updated_at cursor; g is kept as column v.
void seed(Pipeline &p, const KeyKind &k, int rows, const std::string &deletes,
          const std::string &extra = R"(, "max_delete_fraction": 1)") {
    p.src().exec(fmt::format("CREATE TABLE items ({}, v int NOT NULL, note text, updated_at "
                             "timestamptz NOT NULL DEFAULT now(), PRIMARY KEY ({}))",
                             k.columns, k.key_list));
    p.src().exec(fmt::format("INSERT INTO items SELECT {}, g, 'note ' || g, now() - interval '1 "
                             "hour' FROM generate_series(1, {}) g",
                             k.key_of_g, rows));
    p.tables(fmt::format(R"([{{"name": "items", "replication_key": "updated_at", "unique_cols": {},
                            "deletes": "{}"{}}}])",
                         k.unique, deletes, extra));
}

std::string keys_where(pg::Connection &conn, const std::string &table, const std::string &where) {
    return scalar(conn, fmt::format("SELECT coalesce(string_agg(v::text, ',' ORDER BY v), '') "
                                    "FROM {} WHERE {}",
                                    table, where));
}

// Soft deletes: the live rows equal the source, and exactly `deleted` (values of v,
// comma-separated and ordered) carry _pgincr_deleted_at.
void check_soft(Pipeline &p, const KeyKind &k, const std::string &deleted) {
    std::string cols = fmt::format("{}, v, note, updated_at", k.key_list);
    CHECK(scalar(p.src(),
                 fmt::format("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), "
                             "'')) FROM (SELECT {} FROM items) t",
                             cols)) ==
          scalar(p.dst(),
                 fmt::format("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), "
                             "'')) FROM (SELECT {} FROM replica.items WHERE "
                             "_pgincr_deleted_at IS NULL) t",
                             cols)));
    CHECK(keys_where(p.dst(), "replica.items", "_pgincr_deleted_at IS NOT NULL") == deleted);
}

} // namespace

TEST_CASE("deletes: hard and soft - bigint, text and composite keys - one row, a range, all but "
          "one") {
    for (const auto &k : key_kinds) {
        for (std::string mode : {"hard", "soft"}) {
            CAPTURE(k.name);
            CAPTURE(mode);
            Pipeline p(fmt::format("del_{}_{}", k.name, mode));
            seed(p, k, 300, mode);
            REQUIRE_SYNC(p, 0);

            p.src().exec("DELETE FROM items WHERE v = 17");
            REQUIRE_SYNC(p, 0);
            CHECK(p.state("items")->last_sync->rows_deleted == 1);
            if (mode == "hard")
                CHECK(p.equal("items"));
            else
                check_soft(p, k, "17");

            p.src().exec("DELETE FROM items WHERE v BETWEEN 100 AND 129");
            REQUIRE_SYNC(p, 0);
            CHECK(p.state("items")->last_sync->rows_deleted == 30);
            std::string range = "17";
            for (int v = 100; v <= 129; ++v)
                range += fmt::format(",{}", v);
            if (mode == "hard")
                CHECK(p.equal("items"));
            else
                check_soft(p, k, range);

            p.src().exec("DELETE FROM items WHERE v <> 250");
            REQUIRE_SYNC(p, 0);
            CHECK(p.state("items")->last_sync->rows_deleted == 268);
            if (mode == "hard") {
                CHECK(p.equal("items"));
                CHECK(p.dst_count("items") == 1);
            } else {
                CHECK(scalar(p.dst(), "SELECT string_agg(v::text, ',') FROM replica.items WHERE "
                                      "_pgincr_deleted_at IS NULL") == "250");
                CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.items") == "300");
            }
            // Nothing left to delete: the next sync deletes nothing.
            REQUIRE_SYNC(p, 0);
            CHECK(p.state("items")->last_sync->rows_deleted == 0);
        }
    }
}

TEST_CASE("deletes: a key deleted and inserted again between two syncs is live - with its new "
          "values") {
    for (std::string mode : {"hard", "soft"}) {
        CAPTURE(mode);
        Pipeline p("del_reinsert_" + mode);
        seed(p, key_kinds[0], 100, mode);
        REQUIRE_SYNC(p, 0);
        p.src().exec("DELETE FROM items WHERE id = 5");
        p.src().exec("INSERT INTO items (id, v, note) VALUES (5, 5, 'back again')");
        REQUIRE_SYNC(p, 0);
        CHECK(p.state("items")->last_sync->rows_deleted == 0);
        CHECK(scalar(p.dst(), "SELECT note FROM replica.items WHERE id = 5") == "back again");
        if (mode == "hard") {
            CHECK(p.equal("items"));
            continue;
        }
        check_soft(p, key_kinds[0], "");
        // Deleted, marked, then back: the merge clears the mark.
        p.src().exec("DELETE FROM items WHERE id = 6");
        REQUIRE_SYNC(p, 0);
        check_soft(p, key_kinds[0], "6");
        p.src().exec("INSERT INTO items (id, v, note) VALUES (6, 6, 'six again')");
        REQUIRE_SYNC(p, 0);
        check_soft(p, key_kinds[0], "");
        CHECK(scalar(p.dst(), "SELECT note FROM replica.items WHERE id = 6") == "six again");
    }
}

TEST_CASE("deletes: a delete that is not committed yet - or a newer version still open - "
          "deletes nothing until it commits") {
    Pipeline p("del_open_tx");
    seed(p, key_kinds[0], 100, "hard");
    REQUIRE_SYNC(p, 0);
    auto writer = admin(pg::Side::source, p.dbs.name());
    // A newer version of row 7 in an open transaction, which then deletes it too.
    writer->exec("BEGIN");
    writer->exec("UPDATE items SET v = -7, updated_at = now() WHERE id = 7");
    REQUIRE_SYNC(p, 0);
    CHECK(scalar(p.dst(), "SELECT v FROM replica.items WHERE id = 7") == "7");
    writer->exec("DELETE FROM items WHERE id = 7");
    REQUIRE_SYNC(p, 0);
    CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.items WHERE id = 7") == "1");
    CHECK(p.state("items")->last_sync->rows_deleted == 0);
    writer->exec("COMMIT");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("items")->last_sync->rows_deleted == 1);
    CHECK(p.equal("items"));

    // A row inserted by a transaction still open at the sync's snapshot is in neither
    // the copy nor the keys: nothing to delete, and the next sync brings it.
    writer->exec("BEGIN");
    writer->exec("INSERT INTO items (id, v) VALUES (1000, 1000)");
    REQUIRE_SYNC(p, 0);
    writer->exec("COMMIT");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("items"));
}

TEST_CASE("deletes: the guard stops a run that would delete half the table - --allow-deletes "
          "lets it through once") {
    Pipeline p("del_guard");
    seed(p, key_kinds[0], 200, "hard", "");
    REQUIRE_SYNC(p, 0);
    auto mark_before = scalar(p.dst(), "SELECT watermark FROM replica._pgincr_tables");
    p.src().exec("DELETE FROM items WHERE id % 2 = 0");
    p.src().exec("UPDATE items SET v = -v, updated_at = now() WHERE id = 1");
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("would delete 100 of the destination's 200 rows (50.0%)") !=
          std::string::npos);
    CHECK(r.err.find("pgincr sync --allow-deletes items") != std::string::npos);
    // Nothing of that run was applied: no delete, no merge, the same mark.
    CHECK(p.dst_count("items") == 200);
    CHECK(scalar(p.dst(), "SELECT v FROM replica.items WHERE id = 1") == "1");
    CHECK(scalar(p.dst(), "SELECT watermark FROM replica._pgincr_tables") == mark_before);

    auto allowed = p.run({"sync", "--allow-deletes", "items"});
    INFO(allowed.all());
    CHECK(allowed.exit_code == 0);
    CHECK(p.equal("items"));
    CHECK(p.state("items")->last_sync->rows_deleted == 100);

    // An empty source is never taken for "every row was deleted", whatever the fraction.
    p.src().exec("DELETE FROM items");
    p.tables(R"([{"name": "items", "replication_key": "updated_at", "deletes": "hard",
                  "max_delete_fraction": 1}])");
    auto empty = p.sync();
    CHECK(empty.exit_code == 1);
    CHECK(empty.err.find("the source table returned no rows while the destination has 100") !=
          std::string::npos);
    CHECK(p.dst_count("items") == 100);
    CHECK(p.run({"sync", "--allow-deletes", "items"}).exit_code == 0);
    CHECK(p.dst_count("items") == 0);

    // --allow-deletes names a table of the run that has deletes.
    CHECK(p.run({"sync", "--allow-deletes", "nope"}).exit_code == 2);
}

TEST_CASE("deletes: a row that moves out of the entry's filter leaves that destination") {
    Pipeline p("del_filter");
    seed(p, key_kinds[0], 100, "hard");
    p.src().exec("ALTER TABLE items ADD COLUMN region text NOT NULL DEFAULT 'eu'");
    p.src().exec("UPDATE items SET region = 'us' WHERE id > 80");
    p.tables(R"([{"name": "items", "replication_key": "updated_at", "destination": "items_eu",
                  "deletes": "hard", "max_delete_fraction": 1,
                  "filter": {"where": "region = $1", "params": ["eu"]}}])");
    REQUIRE_SYNC(p, 0);
    CHECK(p.dst_count("items_eu") == 80);
    // Row 3 moves to the US without its cursor moving: only the key pass can see it go.
    p.src().exec("UPDATE items SET region = 'us' WHERE id = 3");
    p.src().exec("DELETE FROM items WHERE id = 4");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("items_eu")->last_sync->rows_deleted == 2);
    CHECK(scalar(p.dst(), "SELECT string_agg(id::text, ',' ORDER BY id) FROM replica.items_eu "
                          "WHERE id < 6") == "1,2,5");
    CHECK(digest(p.src(), "(SELECT id, v, note, updated_at, region FROM items WHERE region = "
                          "'eu')") == digest(p.dst(), "replica.items_eu"));
}

TEST_CASE("deletes: kill -9 during the delete step - then a rerun - nothing lost - nothing "
          "deleted twice") {
    for (std::string mode : {"hard", "soft"}) {
        CAPTURE(mode);
        Pipeline p("del_kill_" + mode);
        seed(p, key_kinds[0], 200, mode);
        REQUIRE_SYNC(p, 0);
        int round = 0;
        for (std::string point : {"incremental-after-copy", "deletes-after-delete",
                                  "incremental-before-commit", "before-state-save"}) {
            CAPTURE(point);
            ++round;
            p.src().exec(fmt::format("DELETE FROM items WHERE id % 10 = {}", round));
            p.src().exec(fmt::format("UPDATE items SET v = v + 1000, updated_at = now() WHERE "
                                     "id % 10 = {}",
                                     round + 5));
            auto r = p.sync({{"PGINCR_FAULT", point}});
            CHECK(r.signal == SIGKILL);
            REQUIRE_SYNC(p, 0);
            if (mode == "hard") {
                CHECK(p.equal("items"));
            } else {
                CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.items WHERE "
                                      "_pgincr_deleted_at IS NULL") ==
                      scalar(p.src(), "SELECT count(*) FROM items"));
                CHECK(scalar(p.dst(), "SELECT count(*) FROM replica.items") == "200");
            }
            // Before the commit, what the killed run deleted was rolled back and the rerun
            // deletes it, once; after it, the rerun has nothing left to delete.
            CHECK(p.state("items")->last_sync->rows_deleted ==
                  (point == "before-state-save" ? 0 : 20));
        }
    }
}

TEST_CASE("deletes: delete_check_seconds skips the check until it is due - status and the "
          "webhook carry rows_deleted") {
    Pipeline p("del_interval");
    seed(p, key_kinds[0], 100, "hard", R"(, "delete_check_seconds": 3600)");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("items")->deletes_checked_at.has_value());
    p.src().exec("DELETE FROM items WHERE id = 9");
    REQUIRE_SYNC(p, 0);
    CHECK(p.dst_count("items") == 100); // the load counted as a check an hour's worth
    // An hour later (the last check moved back), the check runs.
    p.dst().exec("UPDATE replica._pgincr_tables SET deletes_checked_at = now() - interval '61 "
                 "minutes'");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("items"));
    auto status = p.run({"status", "--json"});
    REQUIRE(status.exit_code == 0);
    auto j = nlohmann::json::parse(status.out);
    CHECK(j[0]["deletes"] == "hard");
    CHECK(j[0]["last_sync"]["rows_deleted"] == 1);
    CHECK_FALSE(j[0]["deletes_checked_at"].is_null());
}

TEST_CASE("deletes and verify: a text key that the two servers order differently - exactly the "
          "deleted keys go - verify finds no false difference") {
    Pipeline p("del_collations");
    // ICU's root collation puts 'a' before 'B'; the destination's C.UTF-8 puts 'B'
    // first: the same range holds other keys on each side.
    p.src().exec("CREATE TABLE words (w text COLLATE \"und-x-icu\" PRIMARY KEY, v int, "
                 "updated_at timestamptz NOT NULL)");
    p.src().exec("INSERT INTO words SELECT chr(CASE WHEN g % 2 = 0 THEN 65 ELSE 97 END + (g / "
                 "2) % 26) || lpad(g::text, 5, '0'), g, now() - interval '1 hour' + g * interval "
                 "'1 ms' FROM generate_series(1, 30000) g");
    p.src().exec("ANALYZE words");
    p.tables(R"([{"name": "words", "replication_key": "updated_at", "deletes": "hard"}])");
    REQUIRE_SYNC(p, 0);
    p.dst().exec("ANALYZE replica.words");
    CHECK(scalar(p.src(), "SELECT string_agg(w, ',' ORDER BY w) FROM (SELECT w FROM words ORDER "
                          "BY w LIMIT 3) x") !=
          scalar(p.dst(), "SELECT string_agg(w, ',' ORDER BY w) FROM (SELECT w FROM "
                          "replica.words ORDER BY w LIMIT 3) x"));
    auto v = p.run({"verify", "--json", "-v"});
    INFO(v.all());
    CHECK(v.exit_code == 0);
    // Ranges of the key would hold other rows on each side: rows go by a hash of the key.
    CHECK(v.err.find("compare by key hash (the servers order the key differently)") !=
          std::string::npos);

    p.src().exec("DELETE FROM words WHERE v % 1000 = 7");
    REQUIRE_SYNC(p, 0);
    CHECK(p.state("words")->last_sync->rows_deleted == 30);
    CHECK(p.equal("words"));
    p.dst().exec("UPDATE replica.words SET v = -v WHERE v IN (11, 22222)");
    auto diff = p.run({"verify", "--json"});
    CHECK(diff.exit_code == 1);
    auto j = nlohmann::json::parse(diff.out);
    CHECK(j[0]["changed"]["count"] == 2);
    CHECK(j[0]["missing_in_dest"]["count"] == 0);
    CHECK(j[0]["only_in_dest"]["count"] == 0);
}

TEST_CASE("deletes: options that make no sense for the mode exit 2 naming the key") {
    Pipeline p("del_config");
    seed(p, key_kinds[0], 10, "hard");
    p.tables(R"([{"name": "items", "replication_key": "updated_at", "mode": "incremental-append",
                  "deletes": "soft"}])");
    auto r = p.sync();
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("entry 1 (\"items\"): key \"deletes\": incremental-append keeps every "
                     "version") != std::string::npos);
    p.tables(R"([{"name": "items", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);
    auto no_deletes = p.run({"sync", "--allow-deletes", "items"});
    CHECK(no_deletes.exit_code == 2);
    CHECK(no_deletes.err.find("has no \"deletes\" option") != std::string::npos);

    // Unique columns with no index to walk: check and sync say so, and what to do.
    p.src().exec("CREATE TABLE loose (id bigint, tag text NOT NULL, updated_at timestamptz NOT "
                 "NULL DEFAULT now())");
    p.tables(R"([{"name": "loose", "replication_key": "updated_at", "unique_cols": ["tag"],
                  "deletes": "hard"}])");
    auto check = p.run({"check"});
    CHECK(check.exit_code == 1);
    CHECK(check.all().find("\"deletes\" needs a btree index on the source that starts with the "
                           "unique columns (tag)") != std::string::npos);
    CHECK(p.sync().exit_code == 1);
}
