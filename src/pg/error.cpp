#include "pg/error.hpp"

#include <fmt/format.h>

namespace pgincr::pg {

const char *side_name(Side side) {
    return side == Side::source ? "source" : "dest";
}

namespace {
std::string describe(Side side, const std::string &sqlstate, const std::string &message,
                     const std::string &statement) {
    std::string text = fmt::format("[{}] {}", side_name(side), message);
    if (!sqlstate.empty())
        text += fmt::format(" (SQLSTATE {})", sqlstate);
    if (!statement.empty()) {
        // The first line that is not a comment: enough to recognise the statement.
        std::string first;
        std::size_t pos = 0;
        while (pos < statement.size()) {
            auto nl = statement.find('\n', pos);
            first = statement.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
            if (first.rfind("--", 0) != 0 && !first.empty())
                break;
            first.clear();
            if (nl == std::string::npos)
                break;
            pos = nl + 1;
        }
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
