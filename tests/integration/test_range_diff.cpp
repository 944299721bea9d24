// diff/range_diff against the real servers, driven directly: keys at both ends of
// bigint and first ranges forced on a small table, so that every level of the descent
// (ranges by value, split by value and by position, rows fetched, lookups) runs.
#include "diff/range_diff.hpp"
#include "support/servers.hpp"

#include <algorithm>
#include <doctest/doctest.h>

using namespace pgincr;
using namespace pgincr::test;

namespace {

diff::Side side(pg::Connection &conn) {
    diff::Side s;
    s.conn = &conn;
    s.relation = "public.t";
    s.key_cols = {"id"};
    s.key_types = {"bigint"};
    s.row_cols = {"%A%.id", "%A%.v"};
    return s;
}

} // namespace

TEST_CASE("range_diff: keys at both ends of bigint - many forced ranges - every difference "
          "found once") {
    TestDatabases dbs("range_diff_extremes");
    for (auto *conn : {&dbs.src(), &dbs.dst()}) {
        conn->exec("CREATE TABLE t (id bigint PRIMARY KEY, v int)");
        conn->exec("INSERT INTO t SELECT g * 4611686018427387, g FROM generate_series(-1999, "
                   "1999) g");
        conn->exec("INSERT INTO t VALUES (-9223372036854775808, 1), (9223372036854775807, 2), "
                   "(0, 3) ON CONFLICT (id) DO UPDATE SET v = 3");
    }
    dbs.dst().exec("UPDATE t SET v = -1 WHERE id = 9223372036854775807");
    dbs.dst().exec("DELETE FROM t WHERE id = -9223372036854775808");
    dbs.dst().exec("INSERT INTO t VALUES (12345, 0)");
    dbs.src().exec("UPDATE t SET v = 99 WHERE id = 1000 * 4611686018427387");
    pg::Transaction a(dbs.src()), b(dbs.dst());

    diff::Options o;
    o.compare = diff::Compare::rows;
    o.integer_key = true;
    // Three first ranges: the middle one, bounded on both sides, differs (12345) and is
    // split by value across most of bigint's span.
    o.estimated_rows = 6000;
    std::vector<std::string> missing, extra, changed;
    std::int64_t src_rows = 0;
    auto totals = diff::compare(
        side(dbs.src()), side(dbs.dst()), o,
        [&](const diff::Totals &t) { src_rows = t.source_rows; },
        [&](const diff::Found &f) {
            for (const auto &k : f.missing)
                missing.push_back(diff::describe(k));
            for (const auto &k : f.extra)
                extra.push_back(diff::describe(k));
            for (const auto &k : f.changed)
                changed.push_back(diff::describe(k));
        });
    std::sort(changed.begin(), changed.end());
    CHECK(src_rows == 4001);
    CHECK(totals.ranges > 3 + 16);
    CHECK(missing == std::vector<std::string>{"-9223372036854775808"});
    CHECK(extra == std::vector<std::string>{"12345"});
    CHECK(changed == std::vector<std::string>{"4611686018427387000", "9223372036854775807"});

    // Keys only: the changed values are no difference, the lone keys still are.
    o.compare = diff::Compare::keys;
    std::size_t lone = 0;
    diff::compare(side(dbs.src()), side(dbs.dst()), o, {}, [&](const diff::Found &f) {
        lone += f.missing.size() + f.extra.size() + f.changed.size();
    });
    CHECK(lone == 2);
}
