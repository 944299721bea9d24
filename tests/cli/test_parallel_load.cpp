// Parallel full loads (PGINCR_JOBS, --jobs): CTID ranges read by several source
// sessions under one exported snapshot, written by several destination COPY streams.
#include "support/background.hpp"
#include "support/pause.hpp"
#include "support/pipeline.hpp"

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <future>
#include <mutex>
#include <thread>

using namespace pgincr;
using namespace pgincr::test;

namespace {

const char *t_config = R"([{"name": "t", "replication_key": "updated_at", "unique_cols": ["id"]}])";

// A heap with holes: scattered deletes and a deleted stretch, and updated rows whose
// new versions land elsewhere, all left unvacuumed, so that equal CTID ranges hold very
// different numbers of live rows.
void seed_holey(pg::Connection &src) {
    src.exec("CREATE TABLE t (id bigint PRIMARY KEY, v text, pad text, "
             "updated_at timestamptz NOT NULL) WITH (autovacuum_enabled = off)");
    src.exec("INSERT INTO t SELECT g, 'v' || g, repeat(md5(g::text), 4), "
             "now() - interval '2 hours' + g * interval '1 ms' FROM generate_series(1, 20000) g");
    src.exec("DELETE FROM t WHERE id % 5 = 0 OR id BETWEEN 6000 AND 9000");
    src.exec("UPDATE t SET v = 'before', updated_at = now() - interval '1 hour' WHERE id % 11 = 0");
}

// Writes to the source in small transactions on its own session until destroyed: each
// inserts a row and updates another. hold() returns once no transaction is in flight
// and keeps it so until resume().
class Writer {
  public:
    explicit Writer(const std::string &db) : conn_(admin(pg::Side::source, db)) {
        thread_ = std::thread([this] { run(); });
    }
    ~Writer() {
        {
            std::lock_guard<std::mutex> l(mutex_);
            stop_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    void hold() {
        std::lock_guard<std::mutex> l(mutex_);
        held_ = true;
    }
    void resume() {
        {
            std::lock_guard<std::mutex> l(mutex_);
            held_ = false;
        }
        cv_.notify_all();
    }
    long commits() {
        std::lock_guard<std::mutex> l(mutex_);
        return commits_;
    }

  private:
    void run() {
        for (long i = 1;; ++i) {
            {
                std::unique_lock<std::mutex> l(mutex_);
                cv_.wait(l, [&] { return !held_ || stop_; });
                if (stop_)
                    return;
                conn_->exec("BEGIN");
                conn_->exec(
                    fmt::format("INSERT INTO t VALUES ({}, 'new', 'w', now())", 100000 + i));
                conn_->exec(fmt::format("UPDATE t SET v = 'during {}', updated_at = now() WHERE "
                                        "id = {}",
                                        i, (i * 7919) % 20000 + 1));
                conn_->exec("COMMIT");
                ++commits_;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
    std::unique_ptr<pg::Connection> conn_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool held_ = false;
    bool stop_ = false;
    long commits_ = 0;
    std::thread thread_;
};

bool eventually(pg::Connection &conn, const std::string &sql) {
    for (int i = 0; i < 1500; ++i) {
        if (scalar(conn, sql) == "t")
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

std::size_t count_of(const std::string &text, const std::string &part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1))
        ++n;
    return n;
}

std::string shadow_tables(pg::Connection &dst) {
    return scalar(dst, "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE "
                       "'\\_pgincr\\_load%'");
}

} // namespace

TEST_CASE("parallel load: --jobs 3 over a holey table written to during the load equals the "
          "source as of the load's snapshot - then, after the next sync, the source") {
    Pipeline p("par_snapshot", "public", "replica", "PGINCR_SPLIT_MIN_MB=0\n");
    seed_holey(p.src());
    p.tables(t_config);
    Writer writer(p.dbs.name());
    while (writer.commits() < 10)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));

    // The writer is held while pgincr takes its snapshot, so the snapshot's rows are
    // known; it writes again through the whole copy.
    writer.hold();
    auto as_of_snapshot = digest(p.src(), p.src_rel("t"));
    Pause snapshot_taken(p.dir, "snapshot-taken");
    Pause part_copied(p.dir, "load-part-copied");
    auto env = snapshot_taken.env();
    env["PGINCR_PAUSE"] = "snapshot-taken,load-part-copied";
    auto run = std::async(std::launch::async, [&] { return p.run({"sync", "--jobs", "3"}, env); });
    REQUIRE(snapshot_taken.reached());
    writer.resume();
    snapshot_taken.go();
    REQUIRE(part_copied.reached());
    // Mid-way: every stream has a source session of its own, all in the one snapshot.
    CHECK(eventually(p.src(),
                     fmt::format("SELECT count(*) = 3 FROM pg_stat_activity WHERE application_name "
                                 "= 'pgincr' AND datname = '{}'",
                                 p.dbs.name())));
    auto commits = writer.commits();
    // Long enough for the progress line that a non-terminal logs every 10 s.
    std::this_thread::sleep_for(std::chrono::milliseconds(10500));
    CHECK(writer.commits() > commits + 20);
    part_copied.go();
    auto r = run.get();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(r.all().find("3 parallel streams over 12 CTID ranges") != std::string::npos);
    // One progress line for the table, not one per stream.
    CHECK(count_of(r.all(), "loading: ") == 1);
    CHECK(r.all().find(env_or_fail("PGINCR_TEST_PASSWORD")) == std::string::npos);
    CHECK(digest(p.dst(), p.dst_rel("t")) == as_of_snapshot);
    CHECK(digest(p.src(), p.src_rel("t")) != as_of_snapshot);
    CHECK(shadow_tables(p.dst()) == "0");

    writer.hold();
    auto next = p.run({"sync", "--jobs", "3"});
    INFO(next.all());
    REQUIRE(next.exit_code == 0);
    CHECK(p.state("t")->last_sync->mode == "incremental");
    CHECK(p.equal("t"));
}

TEST_CASE("parallel load: a filter applies to every part - one stream below "
          "PGINCR_SPLIT_MIN_MB") {
    Pipeline p("par_filter", "public", "replica", "PGINCR_SPLIT_MIN_MB=0\n");
    seed_holey(p.src());
    p.tables(R"([{"name": "t", "replication_key": "updated_at", "unique_cols": ["id"],
                  "filter": {"where": "id % $1 <> 0 AND v <> $2", "params": ["3", "before"]}}])");
    auto r = p.run({"sync", "--jobs", "3"});
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(r.all().find("3 parallel streams") != std::string::npos);
    CHECK(digest(p.dst(), p.dst_rel("t")) ==
          digest(p.src(), "(SELECT * FROM public.t WHERE id % 3 <> 0 AND v <> 'before')"));

    // The default threshold (64 MB) keeps this 4 MB table in one stream.
    p.dir.write_env(p.dbs, "public", "replica");
    REQUIRE(p.run({"reset", "t"}).exit_code == 0);
    auto one = p.run({"sync", "--jobs", "3"});
    INFO(one.all());
    REQUIRE(one.exit_code == 0);
    CHECK(one.all().find("parallel streams") == std::string::npos);
    CHECK(digest(p.dst(), p.dst_rel("t")) ==
          digest(p.src(), "(SELECT * FROM public.t WHERE id % 3 <> 0 AND v <> 'before')"));
}

TEST_CASE("parallel load: kill -9 or a signal while parts are copying leaves the old table and "
          "state - no shadow table after the next run, which converges") {
    Pipeline p("par_killed", "public", "replica", "PGINCR_SPLIT_MIN_MB=0\nPGINCR_JOBS=3\n");
    seed_holey(p.src());
    p.tables(t_config);
    REQUIRE_SYNC(p, 0);
    auto before = digest(p.dst(), p.dst_rel("t"));
    p.src().exec("INSERT INTO t SELECT g, 'late', 'x', now() FROM generate_series(30001, 31000) g");
    p.src().exec("UPDATE t SET v = 'changed', updated_at = now() WHERE id % 7 = 0");

    REQUIRE(p.run({"reset", "t"}).exit_code == 0);
    auto reset_state = p.dir.read("sync-state/t.json");
    auto mark = p.state("t")->watermark;
    auto killed = p.sync({{"PGINCR_FAULT", "load-part-copied"}});
    INFO(killed.all());
    CHECK(killed.signal == SIGKILL);
    CHECK(digest(p.dst(), p.dst_rel("t")) == before);
    CHECK(p.dir.read("sync-state/t.json") == reset_state);
    // The parallel streams' shadow table was committed: the kill leaves it behind.
    CHECK(shadow_tables(p.dst()) == "1");

    {
        // A signal instead: every stream stops, and the shadow table is dropped at once.
        Pause part_copied(p.dir, "load-part-copied");
        Background bg(p.dir, {"sync"}, part_copied.env());
        REQUIRE(part_copied.reached());
        bg.signal(SIGTERM);
        CHECK(bg.wait() == 4);
        INFO(bg.log());
        CHECK(digest(p.dst(), p.dst_rel("t")) == before);
        // The failure is recorded; the mark and the pending reset stay.
        CHECK(p.state("t")->reset_requested);
        CHECK(p.state("t")->watermark == mark);
        CHECK(shadow_tables(p.dst()) == "0");
    }

    REQUIRE_SYNC(p, 0);
    CHECK(p.state("t")->last_sync->mode == "reset");
    CHECK(p.equal("t"));
    CHECK(shadow_tables(p.dst()) == "0");
}

TEST_CASE("parallel load: a migration queued behind the load's table lock fails the load at once "
          "- the streams do not queue behind it - and the next run loads the new definition") {
    Pipeline p("par_migration", "public", "replica", "PGINCR_SPLIT_MIN_MB=0\nPGINCR_JOBS=3\n");
    seed_holey(p.src());
    p.tables(t_config);
    std::future<RunResult> run;
    std::future<void> migration;
    Pause pause(p.dir, "snapshot-taken");
    run = std::async(std::launch::async, [&] { return p.sync(pause.env()); });
    REQUIRE(pause.reached());
    auto db = p.dbs.name();
    migration = std::async(std::launch::async, [db] {
        admin(pg::Side::source, db)->exec("ALTER TABLE t ADD COLUMN extra int DEFAULT 7");
    });
    REQUIRE(eventually(p.src(), "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE "
                                "'ALTER TABLE t%' AND wait_event_type = 'Lock')"));
    pause.go();
    auto r = run.get();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    // Without NOWAIT the streams would wait for the ALTER, which waits for the load:
    // a "lock timeout" after PGINCR_LOCK_TIMEOUT_SECONDS (300 s).
    CHECK(r.all().find("could not obtain lock on relation") != std::string::npos);
    migration.get();
    CHECK(shadow_tables(p.dst()) == "0");

    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("t"));
}

TEST_CASE("parallel load: --jobs outside 1-16 is a usage error for sync and watch") {
    WorkDir dir;
    for (std::string command : {"sync", "watch"})
        for (std::string jobs : {"0", "17", "many"}) {
            CAPTURE(command);
            CAPTURE(jobs);
            auto r = dir.run({command, "--jobs", jobs});
            CHECK(r.exit_code == 2);
            CHECK(r.all().find("--jobs") != std::string::npos);
        }
}
