// cdc/drain against real servers: several tables' changes in many small transactions
// and one large one reach the destination in batches, the position applied is saved
// in the same destination transaction and confirmed only after it, and a new stream
// from the saved position applies nothing twice.
#include "cdc/drain.hpp"
#include "support/servers.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

using namespace pgincr;
using namespace pgincr::test;

namespace {

cdc::Resolve routes() {
    return [](const cdc::Relation &rel) -> std::optional<cdc::Route> {
        if (rel.name == "pairs")
            return cdc::Route{{"public.pairs",
                               {"region", "n", "v"},
                               {"text", "integer", "integer"},
                               {0, 1},
                               "",
                               "",
                               ""},
                              {}};
        if (rel.name == "codes")
            return cdc::Route{{"public.codes", {"code", "note"}, {"text", "text"}, {0}, "", "", ""},
                              {}};
        return std::nullopt; // not this pipeline's table
    };
}

cdc::SaveProgress saver() {
    return [](pg::Connection &dst, pg::Lsn lsn) {
        dst.exec("UPDATE progress SET lsn = $1::pg_lsn", {lsn.str()}, pg::Expect::command);
    };
}

std::string current_lsn(pg::Connection &src) {
    return scalar(src, "SELECT pg_current_wal_lsn()");
}

// A database `name` on both servers with `tables` created alike on each side (and
// `source_only` on the source), the destination's progress row, the publication
// <name>_pub of `published` and the logical slot <name>_slot.
struct Streamed {
    Streamed(const std::string &name, const std::vector<std::string> &tables,
             const std::vector<std::string> &source_only, const std::string &published)
        : dbs(name), guard{name + "_slot"}, info(dbs.source_info()) {
        for (auto *conn : {&dbs.src(), &dbs.dst()})
            for (const auto &t : tables)
                conn->exec(t);
        for (const auto &t : source_only)
            dbs.src().exec(t);
        dbs.dst().exec("CREATE TABLE progress (lsn pg_lsn)");
        dbs.dst().exec("INSERT INTO progress VALUES (NULL)");
        dbs.src().exec(fmt::format("CREATE PUBLICATION {}_pub FOR TABLE {}", name, published));
        info.replication = true;
        walsender = std::make_unique<pg::Connection>(info);
        slot = pg::create_logical_slot(*walsender, name + "_slot");
    }
    TestDatabases dbs;
    SlotCleanup guard;
    pg::ConnInfo info; // a replication session's
    std::unique_ptr<pg::Connection> walsender;
    pg::Slot slot;
};

} // namespace

TEST_CASE("cdc drain: many tables and transactions in batches - the saved position - no change "
          "applied twice") {
    Streamed st("cdc_drain",
                {"CREATE TABLE pairs (region text, n int, v int, PRIMARY KEY (region, n))",
                 "CREATE TABLE codes (code text PRIMARY KEY, note text)"},
                {"CREATE TABLE other (id int PRIMARY KEY)"}, "pairs, codes, other");
    auto &dbs = st.dbs;
    auto &walsender = *st.walsender;
    auto &slot = st.slot;
    auto &info = st.info;

    // 300 small transactions over three tables, then one of 20,000 rows.
    for (int i = 0; i < 100; ++i) {
        dbs.src().exec(fmt::format("INSERT INTO pairs VALUES ('eu', {0}, {0})", i));
        dbs.src().exec(fmt::format("INSERT INTO codes VALUES ('c{0}', 'note {0}')", i));
        dbs.src().exec(fmt::format("INSERT INTO other VALUES ({})", i));
    }
    dbs.src().exec("BEGIN; UPDATE pairs SET v = v + 1000; INSERT INTO pairs SELECT 'us', g, g "
                   "FROM generate_series(1, 20000) g; DELETE FROM codes WHERE code = 'c5'; "
                   "COMMIT");
    auto until = pg::Lsn::parse(current_lsn(dbs.src()));

    cdc::DrainOptions o;
    o.until = until;
    // Batches end at source commits: the 200 small changes make several, the large
    // transaction one of its own.
    o.batch_changes = 50;
    cdc::DrainResult first;
    {
        pg::LogicalStream stream(walsender, slot.name, slot.consistent_point, {"cdc_drain_pub"});
        first = cdc::drain(stream, dbs.dst(), routes(), saver(), o);
        stream.finish();
    }
    CHECK(first.transactions >= 301);
    CHECK(first.batches >= 4);
    CHECK(first.applied >= until);
    CHECK(digest(dbs.src(), "public.pairs") == digest(dbs.dst(), "public.pairs"));
    CHECK(digest(dbs.src(), "public.codes") == digest(dbs.dst(), "public.codes"));
    auto saved = scalar(dbs.dst(), "SELECT lsn FROM progress");
    CHECK(saved == first.applied.str());
    CHECK(scalar(dbs.src(), "SELECT confirmed_flush_lsn = '" + saved +
                                "'::pg_lsn FROM pg_replication_slots WHERE slot_name = "
                                "'cdc_drain_slot'") == "t");

    // From the saved position, in a new session, only what is new arrives.
    dbs.src().exec("UPDATE codes SET note = 'later' WHERE code = 'c7'");
    dbs.src().exec("INSERT INTO other VALUES (1000)");
    o.until = pg::Lsn::parse(current_lsn(dbs.src()));
    pg::Connection walsender2(info);
    {
        pg::LogicalStream stream(walsender2, slot.name, pg::Lsn::parse(saved), {"cdc_drain_pub"});
        auto second = cdc::drain(stream, dbs.dst(), routes(), saver(), o);
        stream.finish();
        CHECK(second.transactions == 2);
        CHECK(second.changes == 1);
    }
    CHECK(digest(dbs.src(), "public.codes") == digest(dbs.dst(), "public.codes"));
    CHECK(digest(dbs.src(), "public.pairs") == digest(dbs.dst(), "public.pairs"));

    // Nothing new: the drain returns at once, applying nothing.
    o.until = pg::Lsn::parse(current_lsn(dbs.src()));
    pg::Connection walsender3(info);
    pg::LogicalStream stream(walsender3, slot.name,
                             pg::Lsn::parse(scalar(dbs.dst(), "SELECT lsn FROM progress")),
                             {"cdc_drain_pub"});
    auto idle = cdc::drain(stream, dbs.dst(), routes(), saver(), o);
    CHECK(idle.changes == 0);
    CHECK(idle.batches == 0);
}

TEST_CASE("cdc drain: after a large transaction the slot's restart point moves past it - the "
          "next stream does not decode it again") {
    Streamed st("cdc_restart",
                {"CREATE TABLE pairs (region text, n int, v int, PRIMARY KEY (region, n))"},
                {"CREATE TABLE other (id int PRIMARY KEY)"}, "pairs"); // other: not published
    auto &dbs = st.dbs;
    auto &slot = st.slot;
    auto &info = st.info;

    cdc::DrainOptions o;
    o.confirm_ahead = 1024 * 1024;
    auto drain_to_end = [&] {
        o.until = pg::Lsn::parse(current_lsn(dbs.src()));
        pg::Connection session(info);
        pg::LogicalStream stream(
            session, slot.name,
            pg::Lsn::parse(scalar(dbs.dst(), "SELECT coalesce(lsn, '" +
                                                 slot.consistent_point.str() + "') FROM progress")),
            {"cdc_restart_pub"});
        auto r = cdc::drain(stream, dbs.dst(), routes(), saver(), o);
        stream.finish();
        return r;
    };
    drain_to_end();

    // A running-transactions record (a checkpoint logs one) past the confirmed position
    // proposes itself as the next restart point, and PostgreSQL takes no other proposal
    // until that one is confirmed. The one after the large transaction is decoded once
    // the transaction was sent: the drain must have confirmed ahead by then, or it is
    // dropped and the next stream decodes the whole transaction again.
    dbs.src().exec("INSERT INTO other VALUES (1)"); // WAL past the confirmed position
    dbs.src().exec("CHECKPOINT");
    auto writer_conn = admin(pg::Side::source, "cdc_restart");
    auto &writer = *writer_conn;
    auto before = current_lsn(dbs.src());
    writer.exec("BEGIN");
    writer.exec("INSERT INTO pairs SELECT 'eu', g, g FROM generate_series(1, 50000) g");
    dbs.src().exec("CHECKPOINT");
    writer.exec("INSERT INTO pairs SELECT 'us', g, g FROM generate_series(1, 50000) g");
    writer.exec("COMMIT");
    dbs.src().exec("CHECKPOINT");
    CHECK(drain_to_end().changes == 100000);

    CHECK(digest(dbs.src(), "public.pairs") == digest(dbs.dst(), "public.pairs"));
    // Past the transaction, unless another one (autovacuum's, in any database) was
    // running at the checkpoint after it: then its start. Left where it was, it would
    // be before the large one.
    CHECK(scalar(dbs.src(), "SELECT restart_lsn > '" + before +
                                "'::pg_lsn FROM pg_replication_slots WHERE slot_name = "
                                "'cdc_restart_slot'") == "t");
}

TEST_CASE("cdc drain: while the source commits faster than 100 ms apart, a batch of "
          "batch_when_idle changes ends whenever nothing more has arrived") {
    Streamed st("cdc_idle", {"CREATE TABLE codes (code text PRIMARY KEY, note text)"}, {}, "codes");
    auto &dbs = st.dbs;
    auto &walsender = *st.walsender;
    auto &slot = st.slot;

    // 60 transactions of 5 rows, 20 ms apart: the stream is empty between them, but
    // never for the 100 ms that otherwise ends a batch while following.
    std::atomic<bool> written = false;
    std::jthread writer([&] {
        auto conn = admin(pg::Side::source, "cdc_idle");
        for (int i = 0; i < 60; ++i) {
            conn->exec(fmt::format("INSERT INTO codes SELECT 'c{}-' || g, 'n' FROM "
                                   "generate_series(1, 5) g",
                                   i));
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        written = true;
    });
    auto applied = admin(pg::Side::dest, "cdc_idle");
    cdc::DrainOptions o;
    o.until = slot.consistent_point;
    o.follow_until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    // Once everything is written and committed in the destination.
    o.stop = [&] { return written && scalar(*applied, "SELECT count(*) FROM codes") == "300"; };
    o.batch_when_idle = 20;
    cdc::DrainResult r;
    {
        pg::LogicalStream stream(walsender, slot.name, slot.consistent_point, {"cdc_idle_pub"});
        r = cdc::drain(stream, dbs.dst(), routes(), saver(), o);
        stream.finish();
    }
    writer.join();
    CHECK(r.changes == 300);
    // Each batch of about 20 changes (4 transactions) applied as soon as it could be.
    CHECK(r.batches >= 5);
    CHECK(digest(dbs.src(), "public.codes") == digest(dbs.dst(), "public.codes"));
}
