// watermark::HorizonReader against the real source server.
#include "source/watermark.hpp"
#include "support/servers.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <thread>

using namespace pgincr;
using namespace pgincr::test;
using namespace std::chrono_literals;

TEST_CASE("watermark: a horizon read a moment ago is reused for the next table, an older one "
          "is read again") {
    TestDatabases dbs("horizon_reuse");
    pg::Connection src(dbs.source_info());

    // No other transaction is open in this database: a new read gives now() less the
    // slack, later each time.
    watermark::HorizonReader quick(1h);
    std::string first = quick.read(src, nullptr, 900).at;
    CHECK_FALSE(quick.reused());
    std::this_thread::sleep_for(20ms);
    CHECK(quick.read(src, nullptr, 900).at == first);
    CHECK(quick.reused());

    watermark::HorizonReader fresh(0ms);
    std::string a = fresh.read(src, nullptr, 900).at;
    std::this_thread::sleep_for(20ms);
    std::string b = fresh.read(src, nullptr, 900).at;
    CHECK_FALSE(fresh.reused());
    CHECK(a != b);
    // A horizon only moves forward, so the reused one is never later than a new read.
    CHECK(scalar(src, "SELECT '" + first + "'::timestamptz <= '" + b + "'::timestamptz") == "t");
}
