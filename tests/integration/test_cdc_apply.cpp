// cdc/apply against real servers: changes streamed from a logical slot on the source
// and applied to a destination table leave it equal to the source, with the last
// change of each key winning, unchanged TOASTed values kept (also when the row was
// inserted in the same batch) and TRUNCATE applied in order.
#include "cdc/apply.hpp"
#include "pg/replication.hpp"
#include "support/servers.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

using namespace pgincr;
using namespace pgincr::test;

namespace {

// Streams until `commits` transactions were read, applying every change of `relname`
// to `apply`; returns the last commit's end.
pg::Lsn stream_into(pg::LogicalStream &stream, cdc::TableApply &apply, int commits,
                    int *unchanged = nullptr) {
    pg::Lsn end;
    for (int polls = 0; commits > 0 && polls < 300; ++polls) {
        auto data = stream.next(std::chrono::milliseconds(100));
        if (!data)
            continue;
        auto m = cdc::decode(data->bytes);
        if (auto *i = std::get_if<cdc::Insert>(&m))
            apply.add(*i);
        else if (auto *u = std::get_if<cdc::Update>(&m)) {
            for (const auto &v : u->row)
                if (unchanged && v.kind == cdc::Value::Kind::unchanged)
                    ++*unchanged;
            apply.add(*u);
        } else if (auto *d = std::get_if<cdc::Delete>(&m))
            apply.add(*d);
        else if (std::get_if<cdc::Truncate>(&m))
            apply.truncate();
        else if (auto *c = std::get_if<cdc::Commit>(&m)) {
            --commits;
            end = pg::Lsn{c->end_lsn};
        }
    }
    REQUIRE(commits == 0);
    return end;
}

} // namespace

TEST_CASE("cdc apply: the last change of each key wins - unchanged TOASTed values are kept - "
          "truncate applies in order") {
    TestDatabases dbs("cdc_apply");
    const char *ddl = "CREATE TABLE docs (region text, n int, note text, body text, doc jsonb, "
                      "PRIMARY KEY (region, n))";
    dbs.src().exec(ddl);
    dbs.src().exec("ALTER TABLE docs REPLICA IDENTITY DEFAULT");
    dbs.dst().exec(ddl);
    dbs.src().exec("CREATE PUBLICATION cdc_apply_pub FOR TABLE docs");
    SlotCleanup guard{"cdc_apply_slot"};
    auto info = dbs.source_info();
    info.replication = true;
    pg::Connection walsender(info);
    auto slot = pg::create_logical_slot(walsender, "cdc_apply_slot");

    // Large, TOASTed values that later updates leave alone.
    std::string big = "(SELECT string_agg(md5(g::text), E'\\t\\\\\\n') FROM generate_series(1, "
                      "600) g)";
    std::string big_doc = "(SELECT jsonb_agg(md5(g::text)) FROM generate_series(1, 600) g)";
    dbs.src().exec(fmt::format("INSERT INTO docs SELECT 'eu', g, 'n' || g, {}, {} FROM "
                               "generate_series(1, 5) g",
                               big, big_doc));
    // An insert and an update of the same row in one batch, the update leaving the big
    // values unchanged.
    dbs.src().exec(fmt::format("INSERT INTO docs VALUES ('us', 1, 'first', {}, {})", big, big_doc));
    dbs.src().exec("UPDATE docs SET note = E'second\\twith a tab' WHERE region = 'us'");
    dbs.src().exec("UPDATE docs SET note = NULL WHERE n = 2 AND region = 'eu'");
    dbs.src().exec("DELETE FROM docs WHERE n = 3");
    // A key deleted and inserted again, and a key that moves.
    dbs.src().exec("DELETE FROM docs WHERE n = 4");
    dbs.src().exec("INSERT INTO docs VALUES ('eu', 4, 'again', 'small', '{}')");
    dbs.src().exec("UPDATE docs SET n = 50, body = 'moved' WHERE n = 5");

    cdc::TableShape shape{"public.docs",
                          {"region", "n", "note", "body", "doc"},
                          {"text", "integer", "text", "text", "jsonb"},
                          {0, 1},
                          ""};
    pg::Lsn end;
    {
        pg::LogicalStream stream(walsender, slot.name, slot.consistent_point, {"cdc_apply_pub"});
        pg::Transaction tx(dbs.dst());
        cdc::TableApply apply(dbs.dst(), shape);
        int unchanged = 0;
        end = stream_into(stream, apply, 8, &unchanged);
        // The updates of 'us' 1, 'eu' 2 and the move of 'eu' 5 left TOASTed values alone.
        CHECK(unchanged >= 4);
        CHECK(apply.finish() > 0);
        tx.commit();
        stream.confirm(end);
        stream.finish();
    }
    CHECK(digest(dbs.src(), "public.docs") == digest(dbs.dst(), "public.docs"));
    CHECK(scalar(dbs.dst(), "SELECT length(body) FROM docs WHERE region = 'us'") ==
          scalar(dbs.src(), "SELECT length(body) FROM docs WHERE region = 'us'"));

    // A batch across a TRUNCATE: what came before it is gone, what came after stays.
    dbs.src().exec("UPDATE docs SET note = 'before truncate' WHERE n = 1");
    dbs.src().exec("TRUNCATE docs");
    dbs.src().exec("INSERT INTO docs VALUES ('ap', 7, 'after truncate', NULL, NULL)");
    dbs.src().exec("UPDATE docs SET note = 'updated after truncate' WHERE n = 7");
    pg::Connection walsender2(info);
    {
        pg::LogicalStream stream(walsender2, slot.name, end, {"cdc_apply_pub"});
        pg::Transaction tx(dbs.dst());
        cdc::TableApply apply(dbs.dst(), shape);
        stream_into(stream, apply, 4);
        apply.finish();
        tx.commit();
        stream.finish();
    }
    CHECK(digest(dbs.src(), "public.docs") == digest(dbs.dst(), "public.docs"));
    CHECK(scalar(dbs.dst(), "SELECT count(*) FROM docs") == "1");
}

TEST_CASE("cdc apply: COPY text fields escape what COPY would read otherwise") {
    std::string out;
    cdc::append_copy_field(out, {cdc::Value::Kind::text, "a\tb\\c\nd\re"});
    CHECK(out == "a\\tb\\\\c\\nd\\re");
    out.clear();
    cdc::append_copy_field(out, {cdc::Value::Kind::null, ""});
    CHECK(out == "\\N");
    out.clear();
    cdc::append_copy_field(out, {cdc::Value::Kind::text, "\\N"});
    CHECK(out == "\\\\N"); // the two characters, not a NULL
}
