#pragma once
// A table's "filter": a trusted SQL predicate with $1..$n parameters. Ordinary
// queries bind them with libpq. COPY takes no parameters, so for COPY each $n is
// rewritten to read a transaction-local setting that was itself set through a bound
// parameter: values are never spliced into SQL text.
#include "config.hpp"
#include "pg/connection.hpp"

#include <functional>
#include <string>
#include <vector>

namespace pgincr::filter {

// Positions of the $n placeholders outside strings, quoted identifiers and comments.
struct Placeholder {
    std::size_t begin = 0, end = 0; // [begin, end) of "$n"
    int number = 0;
};
std::vector<Placeholder> placeholders(const std::string &sql);

// Replaces each $n by replacement(n).
std::string rewrite(const std::string &sql, const std::function<std::string(int)> &replacement);

// For COPY on `src` (inside the sync's transaction): asks the server for the
// parameters' types, stores the values with set_config(..., true), and returns the
// predicate with every $n replaced by a typed read of its setting.
std::string for_copy(pg::Connection &src, const std::string &relation,
                     const config::Filter &filter);

pg::Params params(const config::Filter &filter);

} // namespace pgincr::filter
