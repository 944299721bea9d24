// scripts/bench is not part of the suite (it takes minutes at its default size); this
// runs it on a tiny table so that the script keeps working: it starts its own two
// servers, measures every item once, checks destination = source, and writes its
// Markdown report.
#include "support/servers.hpp"

#include <boost/process.hpp>
#include <doctest/doctest.h>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

namespace bp = boost::process;
using namespace pgincr::test;

namespace {

#ifdef PGINCR_SOURCE_DIR
const std::filesystem::path source_dir = PGINCR_SOURCE_DIR;
#else
// tests/cli/this file -> the repository root.
const std::filesystem::path source_dir =
    std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
#endif

} // namespace

TEST_CASE("bench: smoke run on a tiny table writes every row of the report") {
    WorkDir dir;
    auto report = dir.path() / "bench.md";
    bp::environment env = boost::this_process::environment();
    env["PGINCR_BIN"] = env_or_fail("PGINCR_TEST_BIN");
    for (const char *k : {"PGPASSWORD", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS"})
        env.erase(k);
    bp::ipstream out;
    // timeout sends SIGTERM first, on which the script still stops its servers.
    bp::child child(bp::search_path("timeout"), "--kill-after=30", "180",
                    (source_dir / "scripts/bench").string(), "--rows", "2000", "--changes", "200",
                    "--runs", "1", "--no-build", "--out", report.string(),
                    bp::start_dir(dir.path().string()), (bp::std_out & bp::std_err) > out,
                    bp::std_in < bp::null, env);
    std::ostringstream s;
    s << out.rdbuf();
    child.wait();
    int status = child.native_exit_code();
    std::string output = s.str();
    INFO(output);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);

    std::string md = dir.read("bench.md");
    INFO(md);
    CHECK(md.find("Source table: 2,000 rows") != std::string::npos);
    for (const std::string row : {
             "| 1 | limit: binary COPY into an index-less table + primary key | 2,000 |",
             "| 2 | baseline: pg_dump -Fc -Z0 -t T \\| pg_restore | 2,000 |",
             "| 3 | pgincr initial sync (own binary COPY, the default) | 2,000 |",
             "| 3d | pgincr initial sync (pg_dump data path, PGINCR_LOAD_VIA=pg_dump) | 2,000 |",
             "| 4 | delta limit: binary COPY of the changed rows into UNLOGGED + one INSERT",
             "| 5 | pgincr incremental sync, 200 updates + 20 inserts in 2,000 rows | 22",
             "| 4s | delta limit, the same changes in 200 rows | 220 |",
             "| 5s | pgincr incremental sync, 200 updates + 20 inserts in 200 rows | 220 |",
             "| 6 | pgincr sync with no changes |",
             "| 7 | pgincr incremental sync, 200-row delta (peak RSS) |",
             "| initial sync / limit |",
             "| pg_dump \\| pg_restore / initial sync |",
             "| initial sync peak RSS |",
             "| incremental sync / delta limit |",
             "| sync with no changes (whole process) |",
             "| incremental at 2,000 / at 200 rows |",
             "| peak RSS, 200-row delta |",
         })
        CHECK_MESSAGE(md.find(row) != std::string::npos, "no row starting ", row);
    // The script prints the same table it writes.
    CHECK(output.find("| 6 | pgincr sync with no changes |") != std::string::npos);
    // It checked destination = source for both tables.
    CHECK(output.find("replica.orders = app.orders (2020 rows)") != std::string::npos);
    CHECK(output.find("replica_small.orders_small = app.orders_small (220 rows)") !=
          std::string::npos);
}
