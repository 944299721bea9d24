// The compare engine's pure pieces: the array literals its typed parameters travel in,
// and how keys are named in messages.
#include "diff/range_diff.hpp"

#include <doctest/doctest.h>

using namespace pgincr;

TEST_CASE("range_diff: array literals quote every element - escape quotes and backslashes - "
          "keep NULL") {
    CHECK(diff::array_literal({}) == "{}");
    CHECK(diff::array_literal({std::string("1"), std::string("-5")}) == R"({"1","-5"})");
    CHECK(diff::array_literal({std::string(R"(a"b\c)"), std::nullopt, std::string("")}) ==
          R"({"a\"b\\c",NULL,""})");
    // Characters that are syntax in an unquoted element are plain inside quotes.
    CHECK(diff::array_literal({std::string("{x, y}")}) == R"({"{x, y}"})");
    CHECK(diff::array_literal({std::string("NULL")}) == R"({"NULL"})");
}

TEST_CASE("range_diff: keys are named as one value or as a tuple") {
    CHECK(diff::describe({std::string("42")}) == "42");
    CHECK(diff::describe({std::string("eu"), std::string("7")}) == "(eu, 7)");
    CHECK(diff::describe({std::nullopt, std::string("7")}) == "(NULL, 7)");
}
