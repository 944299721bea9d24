#pragma once
// Errors from libpq carry the SQLSTATE, the server's message, the side (source or
// destination) and the statement, as libpqxx's throw_sql_error does.
#include "util/error.hpp"

#include <string>

namespace pgincr::pg {

enum class Side { source, dest };
const char *side_name(Side side); // "source" / "dest"

class PgError : public Error {
  public:
    PgError(Side side, std::string sqlstate, std::string message, std::string statement = {});

    Side side() const { return side_; }
    const std::string &sqlstate() const { return sqlstate_; }
    const std::string &server_message() const { return message_; }
    const std::string &statement() const { return statement_; }

  private:
    Side side_;
    std::string sqlstate_;
    std::string message_;
    std::string statement_;
};

// What to do about the errors real servers give pgincr's sessions, appended to the
// server's message: text the destination's encoding cannot hold (naming the column
// from the COPY context), an expired lock_timeout, a standby cancelling a read for
// recovery. "" when there is nothing to add. Pure, unit-tested.
std::string advice(Side side, const std::string &sqlstate, const std::string &message,
                   const std::string &context, const std::string &server_encoding,
                   int lock_timeout_seconds);

// The connection could not be opened: names the side, never the password.
class ConnectionError : public PgError {
  public:
    using PgError::PgError;
};

} // namespace pgincr::pg
