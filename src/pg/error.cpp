#include "pg/error.hpp"

#include <fmt/format.h>

namespace pgincr::pg {

const char *side_name(Side side) { return side == Side::source ? "source" : "dest"; }

namespace {
std::string describe(Side side, const std::string &sqlstate, const std::string &message,
                     const std::string &statement) {
    std::string text = fmt::format("[{}] {}", side_name(side), message);
    if (!sqlstate.empty())
        text += fmt::format(" (SQLSTATE {})", sqlstate);
    if (!statement.empty()) {
        // First line only: enough to recognise the statement in a log line.
        auto first = statement.substr(0, statement.find('\n'));
        if (first.size() > 160)
            first = first.substr(0, 160) + "...";
        text += fmt::format(" in: {}", first);
    }
    return text;
}
} // namespace

PgError::PgError(Side side, std::string sqlstate, std::string message, std::string statement)
    : Error(describe(side, sqlstate, message, statement)), side_(side),
      sqlstate_(std::move(sqlstate)), message_(std::move(message)),
      statement_(std::move(statement)) {}

} // namespace pgincr::pg
