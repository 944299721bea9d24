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

std::string advice(Side side, const std::string &sqlstate, const std::string &message,
                   const std::string &context, const std::string &server_encoding,
                   int lock_timeout_seconds) {
    if (sqlstate == "22P05" || sqlstate == "22021") {
        // The COPY context reads "COPY <table>, line N, column <name>[: value]".
        std::string column;
        if (auto at = context.find(", column "); at != std::string::npos) {
            column = context.substr(at + 9);
            column = column.substr(0, column.find_first_of(":\n"));
        }
        return fmt::format("{} holds a character that the {} database's encoding {} cannot "
                           "represent; nothing of this table was written. Use a UTF8 {} database, "
                           "or change the value in the source",
                           column.empty() ? "a text value" : fmt::format("column \"{}\"", column),
                           side == Side::dest ? "destination" : "source",
                           server_encoding.empty() ? "(unknown)" : server_encoding,
                           side == Side::dest ? "destination" : "source");
    }
    if (sqlstate == "55P03" && message.find("lock timeout") != std::string::npos)
        return fmt::format("waited PGINCR_LOCK_TIMEOUT_SECONDS ({} s) for a lock another session "
                           "holds (see pg_locks); the table is retried on the next run",
                           lock_timeout_seconds);
    if (side == Side::source && message.find("conflict with recovery") != std::string::npos)
        return "the source is a hot standby that cancelled this read to replay changes from the "
               "primary; on the standby set hot_standby_feedback = on or raise "
               "max_standby_streaming_delay (or max_standby_archive_delay)";
    return "";
}

PgError::PgError(Side side, std::string sqlstate, std::string message, std::string statement)
    : Error(describe(side, sqlstate, message, statement)), side_(side),
      sqlstate_(std::move(sqlstate)), message_(std::move(message)),
      statement_(std::move(statement)) {}

} // namespace pgincr::pg
