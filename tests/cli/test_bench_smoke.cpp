// scripts/bench is not part of the suite (it takes minutes at its default size); this
// runs it on a tiny table so that the script keeps working: it starts its own two
// servers, measures every item once, checks destination = source, and writes its
// Markdown report.
#include "support/servers.hpp"

#include <doctest/doctest.h>

using namespace pgincr::test;

TEST_CASE("bench: smoke run on a tiny table writes every row of the report") {
    WorkDir dir;
    auto report = dir.path() / "bench.md";
    auto r = run_script("bench",
                        {"--rows", "2000", "--changes", "200", "--runs", "1", "--no-build", "--out",
                         report.string()},
                        dir.path(), 180);
    const std::string &output = r.out;
    INFO(output);
    REQUIRE(r.exit_code == 0);

    std::string md = dir.read("bench.md");
    INFO(md);
    CHECK(md.find("Source table: 2,000 rows") != std::string::npos);
    for (const std::string row : {
             "| 1 | limit: binary COPY into an index-less table + primary key | 2,000 |",
             "| 2 | baseline: pg_dump -Fc -Z0 -t T \\| pg_restore (the source's indexes",
             "| 2p | baseline: pg_dump -Fc -Z0 -t T \\| pg_restore -L (primary key only",
             "| 2c | pgcopydb clone, one table, primary key only (one COPY stream) | 2,000 |",
             "| 2s | pgcopydb clone --split-tables-larger-than (8 parts, --table-jobs 2) | 2,000 |",
             "| 3 | pgincr initial sync --jobs 1 (own binary COPY, the default) | 2,000 |",
             "| 3j | pgincr initial sync --jobs 2 (8 CTID ranges, 2 streams) | 2,000 |",
             "| 3d | pgincr initial sync (pg_dump data path, PGINCR_LOAD_VIA=pg_dump) | 2,000 |",
             "| 4 | delta limit: binary COPY of the changed rows into UNLOGGED + one INSERT",
             "| 5 | pgincr incremental sync, 200 updates + 20 inserts in 2,000 rows | 22",
             "| 4s | delta limit, the same changes in 200 rows | 220 |",
             "| 5s | pgincr incremental sync, 200 updates + 20 inserts in 200 rows | 220 |",
             "| 6 | pgincr sync with no changes |",
             "| 4b | delta limit, 200 updates in 2,000 rows | 200 |",
             "| 7 | pgincr incremental sync, 200-row delta (peak RSS) |",
             "| initial sync / limit |",
             "| pg_dump \\| pg_restore -L (same indexes) / initial sync |",
             "| initial sync --jobs 2 / limit (3j / 1) |",
             "| pg_dump \\| pg_restore -L (same indexes) / initial sync --jobs 2 (2p / 3j) |",
             "| pgcopydb clone --split-tables-larger-than / initial sync --jobs 2 (2s / 3j) |",
             "| initial sync peak RSS (any --jobs) |",
             "| incremental sync / delta limit |",
             "| sync with no changes (whole process) |",
             "| incremental at 2,000 / at 200 rows |",
             "| peak RSS, 200-row delta |",
             "| 200-row delta / its delta limit (7 / 4b) |",
             "| 220-row delta / its delta limit (5 / 4) |",
         })
        CHECK_MESSAGE(md.find(row) != std::string::npos, "no row starting ", row);
    // The script prints the same table it writes.
    CHECK(output.find("| 6 | pgincr sync with no changes |") != std::string::npos);
    // It checked destination = source for both tables.
    CHECK(output.find("replica.orders = app.orders (2020 rows)") != std::string::npos);
    CHECK(output.find("replica_small.orders_small = app.orders_small (220 rows)") !=
          std::string::npos);
    // pgcopydb split the table into as many parts as pgincr --jobs 2 reads.
    CHECK(output.find("8 COPY processes will be used") != std::string::npos);
}

TEST_CASE("bench: --only takes the known sections - an unknown one is a usage error") {
    WorkDir dir;
    auto r = run_script("bench", {"--only", "load,verify", "--no-build"}, dir.path(), 30);
    INFO(r.out);
    CHECK(r.exit_code == 2);
    CHECK(r.out.find("--only: unknown section 'verify'") != std::string::npos);
}
