// The mark commits with the rows: each table's progress row in the destination.
#include "support/pipeline.hpp"

#include <csignal>
#include <doctest/doctest.h>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

using namespace pgincr;
using namespace pgincr::test;
namespace fs = std::filesystem;

namespace {

void seed(Pipeline &p) {
    p.src().exec("CREATE TABLE t (id int PRIMARY KEY, v text, "
                 "updated_at timestamptz NOT NULL)");
    p.src().exec("INSERT INTO t SELECT g, 'v' || g, now() - interval '1 hour' + g * interval "
                 "'1 ms' FROM generate_series(1, 1000) g");
    p.tables(R"([{"name": "t", "replication_key": "updated_at", "unique_cols": ["id"]}])");
}

void copy_dir(const fs::path &from, const fs::path &to) {
    fs::remove_all(to);
    fs::copy(from, to, fs::copy_options::recursive);
}

} // namespace

TEST_CASE("progress: kill -9 between the destination commit and the state file, then an older "
          "sync-state/ restored - the destination's progress row wins, no reload, no lost row") {
    Pipeline p("prog_kill");
    seed(p);
    REQUIRE_SYNC(p, 0);
    auto state_dir = p.dir.path() / "sync-state";
    auto before = p.dir.path() / "sync-state.before";
    copy_dir(state_dir, before);

    // A schema change makes the killed run a reload; an update rides along.
    p.src().exec("ALTER TABLE t ADD COLUMN extra int DEFAULT 7");
    p.src().exec("UPDATE t SET v = 'changed', updated_at = now() - interval '10 minutes' WHERE "
                 "id <= 20");
    auto killed = p.sync({{"PGINCR_FAULT", "before-state-save"}});
    REQUIRE(killed.signal == SIGKILL);
    copy_dir(before, state_dir);

    auto status = p.run({"status", "--json"});
    INFO(status.all());
    auto rows = nlohmann::json::parse(status.out);
    CHECK(rows[0]["progress_disagrees"] == true);
    CHECK(rows[0]["watermark"] == rows[0]["watermark_in_destination"]);
    CHECK(rows[0]["watermark"] != rows[0]["watermark_in_state_file"]);

    p.src().exec("UPDATE t SET v = 'later', updated_at = now() WHERE id = 500");
    auto r = p.sync();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(r.all().find("going on from the destination's row") != std::string::npos);
    CHECK(p.state("t")->last_sync->mode == "incremental");
    CHECK(p.equal("t"));
}

TEST_CASE("progress: a destination restored to an older copy of its data, progress row "
          "included, resumes from that older mark with no lost row") {
    Pipeline p("prog_restore");
    seed(p);
    REQUIRE_SYNC(p, 0);
    // The backup: the table and pgincr's catalog as they are now.
    p.dst().exec("CREATE SCHEMA bak");
    p.dst().exec("CREATE TABLE bak.t AS SELECT * FROM replica.t");
    p.dst().exec("CREATE TABLE bak.progress AS SELECT * FROM replica._pgincr_tables");

    // Rows changed after the backup, with keys well below the next sync's horizon.
    p.src().exec("UPDATE t SET v = 'after backup', updated_at = now() - interval '10 minutes' "
                 "WHERE id <= 30");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("t"));

    // Restore the backup; sync-state/ keeps the newer mark.
    p.dst().exec("TRUNCATE replica.t; INSERT INTO replica.t SELECT * FROM bak.t");
    p.dst().exec("DELETE FROM replica._pgincr_tables; "
                 "INSERT INTO replica._pgincr_tables SELECT * FROM bak.progress");
    CHECK_FALSE(p.equal("t"));
    auto r = p.sync();
    INFO(r.all());
    REQUIRE(r.exit_code == 0);
    CHECK(p.state("t")->last_sync->mode == "incremental");
    CHECK(p.state("t")->last_sync->rows_merged == 30);
    CHECK(p.equal("t"));
}
