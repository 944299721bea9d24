#include "modes/parallel_load.hpp"

#include <doctest/doctest.h>

using namespace pgincr;
using parallel_load::Range;

TEST_CASE("parallel load: ranges cover every block once - the last one open-ended") {
    for (std::int64_t blocks : {0, 1, 2, 7, 12, 1000, 244'999}) {
        for (int parts : {1, 2, 3, 8, 12}) {
            CAPTURE(blocks);
            CAPTURE(parts);
            auto ranges = parallel_load::split(blocks, parts);
            REQUIRE(!ranges.empty());
            CHECK(static_cast<std::int64_t>(ranges.size()) <= std::max<std::int64_t>(blocks, 1));
            CHECK(static_cast<int>(ranges.size()) <= parts);
            CHECK(ranges.front().from == 0);
            CHECK(!ranges.back().to.has_value());
            for (std::size_t i = 0; i + 1 < ranges.size(); ++i) {
                REQUIRE(ranges[i].to.has_value());
                CHECK(*ranges[i].to > ranges[i].from); // at least one block each
                CHECK(ranges[i + 1].from == *ranges[i].to);
            }
        }
    }
    CHECK(parallel_load::split(12, 3) == std::vector<Range>{{0, 4}, {4, 8}, {8, std::nullopt}});
}

TEST_CASE("parallel load: a range's predicate is a TID range - none for the whole table") {
    CHECK(parallel_load::predicate(Range{}) == "");
    CHECK(parallel_load::predicate(Range{0, 4}) ==
          "ctid >= '(0,0)'::pg_catalog.tid AND ctid < '(4,0)'::pg_catalog.tid");
    CHECK(parallel_load::predicate(Range{8, std::nullopt}) == "ctid >= '(8,0)'::pg_catalog.tid");
}
