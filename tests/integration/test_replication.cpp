// pg/replication and cdc/pgoutput against the real source (wal_level = logical): a
// slot's exported snapshot sees exactly the rows before the stream, and the stream
// brings every insert, update, delete and truncate after it, decoded, once confirmed
// not again.
#include "cdc/pgoutput.hpp"
#include "pg/replication.hpp"
#include "pg/snapshot.hpp"
#include "support/servers.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <thread>

using namespace pgincr;
using namespace pgincr::test;

namespace {

pg::ConnInfo replication_info(const TestDatabases &dbs) {
    auto info = dbs.source_info();
    info.replication = true;
    return info;
}

// Reads messages until the Commit of `commits` transactions, for at most 30 s.
std::vector<cdc::Message> read_commits(pg::LogicalStream &stream, int commits,
                                       pg::Lsn *last_end = nullptr) {
    std::vector<cdc::Message> out;
    for (int polls = 0; commits > 0 && polls < 300; ++polls) {
        auto data = stream.next(std::chrono::milliseconds(100));
        if (!data)
            continue;
        out.push_back(cdc::decode(data->bytes));
        if (auto *c = std::get_if<cdc::Commit>(&out.back())) {
            --commits;
            if (last_end)
                *last_end = pg::Lsn{c->end_lsn};
        }
    }
    REQUIRE(commits == 0);
    return out;
}

template <typename T> std::vector<T> only(const std::vector<cdc::Message> &messages) {
    std::vector<T> out;
    for (const auto &m : messages)
        if (auto *v = std::get_if<T>(&m))
            out.push_back(*v);
    return out;
}

} // namespace

TEST_CASE("replication: a slot's snapshot and its stream meet exactly - every change decoded "
          "- confirmed changes are not sent again") {
    TestDatabases dbs("repl_stream");
    dbs.src().exec("CREATE TABLE items (region text, n int, note text, big text, PRIMARY KEY "
                   "(region, n))");
    dbs.src().exec("INSERT INTO items SELECT 'eu', g, 'before', NULL FROM generate_series(1, 5) g");
    dbs.src().exec("CREATE PUBLICATION repl_stream_pub FOR TABLE items");
    SlotCleanup guard{"repl_stream_slot"};

    pg::Connection walsender(replication_info(dbs));
    auto slot = pg::create_logical_slot(walsender, "repl_stream_slot");
    CHECK(slot.name == "repl_stream_slot");
    CHECK_FALSE(slot.snapshot.empty());
    {
        // A load in the slot's snapshot sees the rows before it and none after.
        dbs.src().exec("INSERT INTO items VALUES ('us', 1, 'after', NULL)");
        pg::Connection loader(dbs.source_info());
        pg::SnapshotReader reader(loader, slot.snapshot);
        CHECK(scalar(loader, "SELECT count(*) FROM public.items") == "5");
    }
    // A TOASTed value that later updates leave unchanged.
    dbs.src().exec("UPDATE items SET big = (SELECT string_agg(md5(g::text), '') FROM "
                   "generate_series(1, 1000) g) WHERE n = 2 AND region = 'eu'");
    dbs.src().exec("UPDATE items SET note = 'updated' WHERE n = 2 AND region = 'eu'");
    dbs.src().exec("DELETE FROM items WHERE n = 3");
    dbs.src().exec("TRUNCATE items");

    pg::Lsn end;
    {
        pg::LogicalStream stream(walsender, slot.name, slot.consistent_point, {"repl_stream_pub"});
        auto messages = read_commits(stream, 5, &end);
        auto relations = only<cdc::Relation>(messages);
        REQUIRE(relations.size() >= 1);
        CHECK(relations[0].schema == "public");
        CHECK(relations[0].name == "items");
        REQUIRE(relations[0].columns.size() == 4);
        CHECK(relations[0].columns[0].key);
        CHECK(relations[0].columns[1].key);
        CHECK_FALSE(relations[0].columns[2].key);
        CHECK(relations[0].columns[3].name == "big");

        auto inserts = only<cdc::Insert>(messages);
        REQUIRE(inserts.size() == 1); // only the row after the snapshot
        CHECK(inserts[0].row[0].text == "us");
        CHECK(inserts[0].row[2].text == "after");
        CHECK(inserts[0].row[3].kind == cdc::Value::Kind::null);

        auto updates = only<cdc::Update>(messages);
        REQUIRE(updates.size() == 2);
        CHECK(updates[0].row[3].kind == cdc::Value::Kind::text);
        CHECK(updates[0].row[3].text.size() == 32000);
        // The second update left the TOASTed value alone: unchanged, not NULL.
        CHECK(updates[1].row[2].text == "updated");
        CHECK(updates[1].row[3].kind == cdc::Value::Kind::unchanged);

        auto deletes = only<cdc::Delete>(messages);
        REQUIRE(deletes.size() == 1);
        CHECK(deletes[0].old_kind == 'K');
        CHECK(deletes[0].old[1].text == "3");

        auto truncates = only<cdc::Truncate>(messages);
        REQUIRE(truncates.size() == 1);
        CHECK(truncates[0].relations == std::vector<std::uint32_t>{relations[0].id});
        CHECK(only<cdc::Begin>(messages).size() == 5);

        stream.confirm(end);
        stream.finish();
    }
    CHECK(scalar(dbs.src(), "SELECT confirmed_flush_lsn >= '" + end.str() +
                                "'::pg_lsn FROM pg_replication_slots WHERE slot_name = "
                                "'repl_stream_slot'") == "t");

    // Restarted from the confirmed position, the stream brings only what is new. A new
    // session, as pgincr opens one per run: a walsender does not stream twice.
    dbs.src().exec("INSERT INTO items VALUES ('ap', 9, 'new', NULL)");
    pg::Connection walsender2(replication_info(dbs));
    {
        pg::LogicalStream stream(walsender2, slot.name, end, {"repl_stream_pub"});
        auto messages = read_commits(stream, 1);
        auto inserts = only<cdc::Insert>(messages);
        REQUIRE(inserts.size() == 1);
        CHECK(inserts[0].row[0].text == "ap");
        CHECK(only<cdc::Truncate>(messages).empty());
        stream.finish();
    }
    pg::drop_slot(walsender2, slot.name);
    CHECK(scalar(dbs.src(), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
                            "'repl_stream_slot'") == "0");
}

TEST_CASE("replication: messages read ahead come back in order, up to the queue's limit - a "
          "keepalive's WAL end counts only once the data before it was returned") {
    TestDatabases dbs("repl_ahead");
    dbs.src().exec("CREATE TABLE items (n int PRIMARY KEY)");
    dbs.src().exec("CREATE PUBLICATION repl_ahead_pub FOR TABLE items");
    SlotCleanup guard{"repl_ahead_slot"};
    pg::Connection walsender(replication_info(dbs));
    auto slot = pg::create_logical_slot(walsender, "repl_ahead_slot");
    for (int i = 1; i <= 3; ++i)
        dbs.src().exec(fmt::format("INSERT INTO items VALUES ({})", i));
    auto until = pg::Lsn::parse(scalar(dbs.src(), "SELECT pg_current_wal_lsn()"));

    pg::LogicalStream stream(walsender, slot.name, slot.consistent_point, {"repl_ahead_pub"});
    // A full queue takes nothing more: its socket is not watched meanwhile.
    stream.ahead_limit = 1;
    for (int polls = 0; polls < 300 && stream.ahead_socket() != -1; ++polls) {
        stream.while_busy();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(stream.ahead_socket() == -1);
    // Everything the server sent, a keepalive after all of it included, read before any
    // of it is returned.
    stream.ping();
    stream.ahead_limit = 1 << 20;
    CHECK(stream.ahead_socket() >= 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stream.while_busy();
    CHECK(stream.waiting());
    CHECK(stream.server_end() == pg::Lsn{});

    std::vector<std::uint64_t> starts;
    std::vector<int> inserted;
    int commits = 0;
    for (int polls = 0; polls < 300 && (commits < 3 || stream.server_end() < until); ++polls) {
        auto data = stream.next(std::chrono::milliseconds(100));
        if (!data) {
            // A keepalive read with the data counts only after all of it came out.
            if (commits < 3)
                CHECK(stream.server_end() < until);
            continue;
        }
        auto m = cdc::decode(data->bytes);
        bool commit = std::holds_alternative<cdc::Commit>(m);
        // Until the last Commit (sent at `until`) comes out, nothing reached `until`.
        if (!(commit && commits == 2))
            CHECK(stream.server_end() < until);
        if (!std::holds_alternative<cdc::Relation>(m)) // sent with no position
            starts.push_back(data->start.value);
        if (auto *i = std::get_if<cdc::Insert>(&m))
            inserted.push_back(std::stoi(i->row[0].text));
        commits += commit ? 1 : 0;
    }
    CHECK(commits == 3);
    CHECK(inserted == std::vector<int>{1, 2, 3});
    CHECK(std::is_sorted(starts.begin(), starts.end()));
    CHECK(stream.server_end() >= until);
    stream.finish();
}
