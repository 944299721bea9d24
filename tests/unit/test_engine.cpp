// Pure pieces of the sync engine: merge SQL, filter placeholders, pg_dump's command
// line and environment, the COPY section parser, the state file and the fingerprint.
#include "apply/merge.hpp"
#include "source/catalog.hpp"
#include "source/dump.hpp"
#include "source/filter.hpp"
#include "state.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>

using namespace pgincr;

namespace {

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

merge::Spec orders_spec() {
    merge::Spec s;
    s.target = R"("r"."orders")";
    s.staging = R"("r"."orders_stg")";
    s.columns = {R"("id")", R"("v")", R"("updated_at")"};
    s.unique = {R"("id")"};
    s.key = R"("updated_at")";
    return s;
}

} // namespace

TEST_CASE("merge: deduped keeps the highest key per unique value and skips unchanged rows") {
    auto sql = merge::merge_sql(orders_spec());
    CHECK(contains(sql, R"(INSERT INTO "r"."orders" AS d ("id", "v", "updated_at"))"));
    CHECK(contains(sql,
                   R"(SELECT DISTINCT ON ("id") "id", "v", "updated_at" FROM "r"."orders_stg")"));
    CHECK(contains(sql, R"(ORDER BY "id", "updated_at" DESC)"));
    CHECK(contains(sql, R"(ON CONFLICT ("id") DO UPDATE SET "v" = EXCLUDED."v", )"
                        R"("updated_at" = EXCLUDED."updated_at")"));
    CHECK_FALSE(contains(sql, R"("id" = EXCLUDED."id")"));
    CHECK(contains(sql, R"(WHERE d."updated_at" IS DISTINCT FROM EXCLUDED."updated_at" OR )"
                        R"(ROW(d."id", d."v", d."updated_at")::text IS DISTINCT FROM )"
                        R"(ROW(EXCLUDED."id", EXCLUDED."v", EXCLUDED."updated_at")::text)"));
}

TEST_CASE("merge: rows known unique go in as staged - in key order, no dedup - with the same "
          "guard") {
    auto spec = orders_spec();
    spec.unique_rows = true;
    auto sql = merge::merge_sql(spec);
    CHECK(contains(sql, R"(INSERT INTO "r"."orders" AS d ("id", "v", "updated_at") SELECT "id", )"
                        R"("v", "updated_at" FROM "r"."orders_stg" ORDER BY "id" ON CONFLICT )"
                        R"(("id") DO UPDATE)"));
    CHECK_FALSE(contains(sql, "DISTINCT ON"));
    // The same update and no-op guard as with the dedup.
    auto deduped = merge::merge_sql(orders_spec());
    CHECK(sql.substr(sql.find(" ON CONFLICT")) == deduped.substr(deduped.find(" ON CONFLICT")));
}

TEST_CASE("merge: append is unique on the unique columns plus the key and never updates") {
    auto spec = orders_spec();
    spec.append = true;
    CHECK(merge::conflict_columns(spec) == std::vector<std::string>{R"("id")", R"("updated_at")"});
    auto sql = merge::merge_sql(spec);
    CHECK(contains(sql, R"(ON CONFLICT ("id", "updated_at") DO NOTHING)"));
    CHECK_FALSE(contains(sql, "DO UPDATE"));
    // A key that is already a unique column is not listed twice.
    spec.unique = {R"("id")", R"("updated_at")"};
    CHECK(merge::conflict_columns(spec).size() == 2);
}

TEST_CASE("merge: with soft deletes a key that comes back is live again - even unchanged") {
    auto spec = orders_spec();
    spec.deleted_at = R"("_pgincr_deleted_at")";
    auto sql = merge::merge_sql(spec);
    CHECK(contains(sql, R"("updated_at" = EXCLUDED."updated_at", "_pgincr_deleted_at" = NULL)"));
    CHECK(contains(sql, R"(::text) OR d."_pgincr_deleted_at" IS NOT NULL)"));
    // Made only of unique columns, the row has nothing to update but the mark.
    spec.columns = {R"("id")"};
    spec.key = "";
    CHECK(contains(merge::merge_sql(spec), R"(DO UPDATE SET "_pgincr_deleted_at" = NULL WHERE )"));
}

TEST_CASE("merge: source_wins is the merge as it always was") {
    // The default policy adds nothing: no side table, no newest test.
    auto sql = merge::merge_sql(orders_spec());
    CHECK_FALSE(contains(sql, "NOT EXISTS"));
    CHECK_FALSE(contains(sql, ">="));
    CHECK(contains(sql, R"(FROM "r"."orders_stg" ORDER BY)"));
}

TEST_CASE("merge: newest_wins applies a row only when its column is at least the destination's") {
    auto spec = orders_spec();
    spec.newest = R"("changed_at")";
    auto sql = merge::merge_sql(spec);
    CHECK(contains(sql, R"(::text) AND (d."changed_at" IS NULL OR )"
                        R"(EXCLUDED."changed_at" >= d."changed_at"))"));
    // Inserts are never held back: only the ON CONFLICT branch is guarded.
    CHECK(contains(sql,
                   R"(SELECT DISTINCT ON ("id") "id", "v", "updated_at" FROM "r"."orders_stg" )"
                   R"(ORDER BY)"));
    // The count of held-back rows is the guard's negation, over the same dedup.
    auto held = merge::held_back_sql(spec);
    CHECK(contains(held, R"(SELECT DISTINCT ON ("id") * FROM "r"."orders_stg" ORDER BY "id", )"
                         R"("updated_at" DESC) AS s JOIN ONLY "r"."orders" AS d ON d."id" )"
                         R"(IS NOT DISTINCT FROM s."id")"));
    CHECK(contains(held, R"(WHERE d."changed_at" IS NOT NULL AND (s."changed_at" IS NULL OR )"
                         R"(s."changed_at" < d."changed_at"))"));
}

TEST_CASE("merge: target_wins skips staged rows whose key was changed in the destination") {
    auto spec = orders_spec();
    spec.touched = R"("r"."orders_pgincr_touched")";
    spec.unique = {R"("id")", R"("region")"};
    spec.unique_not_null = {true, false};
    auto sql = merge::merge_sql(spec);
    // Filtered before the dedup, so that neither an update nor a re-insert of a row
    // deleted in the destination happens; a NOT NULL key column matches with "=".
    CHECK(contains(sql, R"(FROM "r"."orders_stg" AS s WHERE NOT EXISTS (SELECT FROM )"
                        R"("r"."orders_pgincr_touched" AS t WHERE t."id" = s."id" AND )"
                        R"(t."region" IS NOT DISTINCT FROM s."region") ORDER BY "id", "region", )"
                        R"("updated_at" DESC ON CONFLICT ("id", "region") DO UPDATE)"));
    CHECK(merge::key_match(spec, "a", "b") ==
          R"(a."id" = b."id" AND a."region" IS NOT DISTINCT FROM b."region")");
}

TEST_CASE("merge: a table made only of unique columns merges with DO NOTHING") {
    merge::Spec s;
    s.target = "t";
    s.staging = "t_stg";
    s.columns = {"a", "b"};
    s.unique = {"a", "b"};
    auto sql = merge::merge_sql(s);
    CHECK(contains(sql, "ON CONFLICT (a, b) DO NOTHING"));
    CHECK(contains(sql, "ORDER BY a, b ON CONFLICT"));
}

TEST_CASE("filter: placeholders outside literals - identifiers - comments and dollar quotes") {
    auto numbers = [](const std::string &sql) {
        std::vector<int> out;
        for (const auto &p : filter::placeholders(sql))
            out.push_back(p.number);
        return out;
    };
    CHECK(numbers("region = $1 AND status <> $2") == std::vector<int>{1, 2});
    CHECK(numbers("a = $10 OR b = $2") == std::vector<int>{10, 2});
    CHECK(numbers("note = 'costs $1' AND id = $1").size() == 1);
    CHECK(numbers("note = 'it''s $2' AND x = $1") == std::vector<int>{1});
    CHECK(numbers(R"(note = E'a\'$2' AND x = $1)") == std::vector<int>{1});
    CHECK(numbers(R"("col$1" = $1)") == std::vector<int>{1});
    CHECK(numbers("x = $1 -- not $2\n AND y = $3") == std::vector<int>{1, 3});
    CHECK(numbers("x = $1 /* $2 */ AND y = $3") == std::vector<int>{1, 3});
    CHECK(numbers("x = $tag$ $2 $tag$ AND y = $1") == std::vector<int>{1});
    CHECK(numbers("x = $$ $2 $$ AND y = $1") == std::vector<int>{1});
    CHECK(numbers("col$1 = 5").empty());

    auto p = filter::placeholders("a = $1");
    REQUIRE(p.size() == 1);
    CHECK(p[0].begin == 4);
    CHECK(p[0].end == 6);
    CHECK(filter::rewrite("a = $1 AND b = '$1' AND c = $2", [](int n) {
              return "v" + std::to_string(n);
          }) == "a = v1 AND b = '$1' AND c = v2");
}

TEST_CASE("dump: the password travels in the environment - never in argv") {
    dump::Request r;
    r.source.host = "db.internal";
    r.source.port = "5433";
    r.source.user = "reader";
    r.source.dbname = "app";
    r.source.password = "s3cret-pw";
    r.snapshot = "00000003-0000001B-1";
    r.schema = "My Schema";
    r.table = "Or\"ders";

    auto args = dump::arguments(r);
    for (const auto &a : args) {
        CHECK_FALSE(contains(a, "s3cret-pw"));
        CHECK_FALSE(contains(a, "reader"));
        CHECK_FALSE(contains(a, "db.internal"));
    }
    auto has = [&](const std::string &a) {
        return std::find(args.begin(), args.end(), a) != args.end();
    };
    CHECK(has("--data-only"));
    CHECK(has("--no-password"));
    CHECK(has("--strict-names"));
    CHECK(has("--snapshot=00000003-0000001B-1"));
    CHECK(has(R"(--table="My Schema"."Or""ders")"));

    auto env = dump::environment(r, {{"PATH", "/usr/bin"}, {"PGOPTIONS", "-c x=y"}});
    CHECK(env["PGPASSWORD"] == "s3cret-pw");
    CHECK(env["PGHOST"] == "db.internal");
    CHECK(env["PGPORT"] == "5433");
    CHECK(env["PGUSER"] == "reader");
    CHECK(env["PGDATABASE"] == "app");
    CHECK(env["PATH"] == "/usr/bin");
    CHECK(env.count("PGOPTIONS") == 0);
}

TEST_CASE("dump: exact_pattern quotes names so pg_dump matches them literally") {
    CHECK(dump::exact_pattern("public", "Orders") == R"("public"."Orders")");
    CHECK(dump::exact_pattern("s", "a*b?.c") == R"("s"."a*b?.c")");
    CHECK(dump::exact_pattern("s", R"(say "hi")") == R"("s"."say ""hi""")");
}

TEST_CASE("dump: the COPY section parser yields exactly the data at every buffer boundary") {
    const std::string data = "1\tone\t\\N\n"
                             "2\tback\\\\slash and \\\\.\n"
                             "3\t\\.x\ttab\\there\n"
                             "\\\\.\n";
    const std::string dumped = "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n"
                               "COPY \"s\".\"t\" (id, name, x) FROM stdin;\n" +
                               data + "\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n";
    for (std::size_t size = 1; size <= dumped.size(); ++size) {
        std::string got;
        dump::CopySectionParser parser([&](const char *p, std::size_t n) { got.append(p, n); });
        for (std::size_t at = 0; at < dumped.size(); at += size)
            parser.feed(dumped.data() + at, std::min(size, dumped.size() - at));
        INFO("buffer size ", size);
        CHECK(parser.finished());
        CHECK(got == data);
    }
    // Random split points too.
    std::mt19937 gen(42);
    for (int round = 0; round < 500; ++round) {
        std::string got;
        dump::CopySectionParser parser([&](const char *p, std::size_t n) { got.append(p, n); });
        std::size_t at = 0;
        while (at < dumped.size()) {
            std::size_t n = std::uniform_int_distribution<std::size_t>(0, 40)(gen);
            n = std::min(n, dumped.size() - at);
            parser.feed(dumped.data() + at, n);
            at += n;
        }
        CHECK(got == data);
    }
}

TEST_CASE("dump: an empty table and a dump without COPY section") {
    std::string got;
    dump::CopySectionParser empty([&](const char *p, std::size_t n) { got.append(p, n); });
    std::string text = "SET x = 1;\nCOPY public.t (a) FROM stdin;\n\\.\n";
    empty.feed(text.data(), text.size());
    CHECK(empty.started());
    CHECK(empty.finished());
    CHECK(got.empty());

    dump::CopySectionParser none([&](const char *p, std::size_t n) { got.append(p, n); });
    text = "SET x = 1;\n-- COPY public.t (a) FROM stdin; in a comment does not start it\n";
    none.feed(text.data(), text.size());
    CHECK_FALSE(none.started());
}

TEST_CASE("state: a file round-trips - is written atomically - and any name is a safe file name") {
    auto dir =
        std::filesystem::temp_directory_path() / ("pgincr-state-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    state::Store store(dir);

    state::TableState s;
    s.source_table = "Orders";
    s.destination = "../Or ders/é";
    s.replication_key = "updated_at";
    s.key_type = "timestamp with time zone";
    s.watermark = "2026-01-02 03:04:05.123456+00";
    s.fingerprint = "abc";
    s.dest_signature = "id bigint";
    s.last_sync = state::LastSync{"2026-01-02T03:04:06Z", "incremental", "ok", 7, 3, 12, "", 1.5};
    store.save(s);

    auto path = store.path_for(s.destination);
    CHECK(path.parent_path() == dir);
    CHECK(path.filename().string().find('/') == std::string::npos);
    CHECK(path.filename().string().rfind("..", 0) != 0);
    auto back = store.load(s.destination);
    REQUIRE(back);
    CHECK(back->destination == s.destination);
    CHECK(back->watermark == s.watermark);
    CHECK(back->fingerprint == "abc");
    REQUIRE(back->last_sync);
    CHECK(back->last_sync->rows_merged == 3);
    CHECK(back->last_sync->lag_seconds == 1.5);
    // Only the state file is left behind: no temp files.
    CHECK(std::distance(std::filesystem::directory_iterator(dir),
                        std::filesystem::directory_iterator()) == 1);
    CHECK_FALSE(store.load("other"));

    // A damaged file is an error naming the file, not a silent reload.
    std::ofstream(path) << "{not json";
    try {
        store.load(s.destination);
        FAIL("a damaged state file loaded");
    } catch (const Error &e) {
        CHECK(contains(e.what(), path.filename().string()));
    }

    // The old tool's cursor file.
    std::ofstream(dir / "orders.txt") << "2025-03-04T05:06:07.890Z\n";
    CHECK(store.legacy_mark("orders") == "2025-03-04T05:06:07.890Z");
    CHECK_FALSE(store.legacy_mark("customers"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("catalog: the fingerprint changes with every part of a column's definition") {
    std::vector<catalog::Column> base = {
        {"id", "bigint", "bigint", true, std::nullopt},
        {"price", "numeric(12,2)", "numeric(12,2)", false, std::nullopt}};
    auto fp = catalog::fingerprint(base, {"id"});
    CHECK(fp == catalog::fingerprint(base, {"id"}));
    auto changed = [&](auto mutate, std::vector<std::string> unique = {"id"}) {
        auto cols = base;
        mutate(cols);
        return catalog::fingerprint(cols, unique) != fp;
    };
    CHECK(changed([](auto &c) { c[1].source_type = "numeric(20,6)"; }));
    CHECK(changed([](auto &c) { c[0].source_type = "integer"; }));
    CHECK(changed([](auto &c) { c[0].not_null = false; }));
    CHECK(changed([](auto &c) { c[1].name = "cost"; }));
    CHECK(changed([](auto &c) { std::swap(c[0], c[1]); }));
    CHECK(changed([](auto &c) { c[1].generated = "(id * 2)"; }));
    CHECK(changed([](auto &c) { c.push_back({"note", "text", "text", false, std::nullopt}); }));
    CHECK(changed([](auto &) {}, {"id", "price"}));
}
