// pg::Snapshot and pg::SnapshotReader against the real source server.
#include "pg/snapshot.hpp"
#include "support/servers.hpp"

#include <doctest/doctest.h>

using namespace pgincr;
using namespace pgincr::test;

TEST_CASE("snapshot: readers that import an exported snapshot see exactly its rows - closing "
          "releases the table lock") {
    TestDatabases dbs("snap_readers");
    dbs.src().exec("CREATE TABLE t (id int)");
    dbs.src().exec("INSERT INTO t SELECT generate_series(1, 10)");
    pg::Connection main_session(dbs.source_info());
    pg::Connection reader_session(dbs.source_info());
    pg::Snapshot snap(main_session);
    snap.lock("public.t");
    CHECK(scalar(main_session, "SELECT count(*) FROM public.t") == "10");
    auto id = snap.exported();
    dbs.src().exec("INSERT INTO t SELECT generate_series(11, 20)"); // after the snapshot
    {
        pg::SnapshotReader reader(reader_session, id);
        CHECK(scalar(reader_session, "SELECT count(*) FROM public.t") == "10");
        reader.close();
    }
    CHECK(scalar(reader_session, "SELECT count(*) FROM public.t") == "20");
    // The ACCESS SHARE lock is held until close(): a TRUNCATE would wait behind it.
    CHECK(scalar(dbs.src(), "SELECT count(*) FROM pg_locks WHERE relation = 'public.t'::regclass "
                            "AND mode = 'AccessShareLock' AND pid <> pg_backend_pid()") == "1");
    snap.close();
    CHECK_FALSE(snap.open());
    CHECK(scalar(dbs.src(), "SELECT count(*) FROM pg_locks WHERE relation = 'public.t'::regclass "
                            "AND mode = 'AccessShareLock' AND pid <> pg_backend_pid()") == "0");
}
