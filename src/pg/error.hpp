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

// The connection could not be opened: names the side, never the password.
class ConnectionError : public PgError {
  public:
    using PgError::PgError;
};

} // namespace pgincr::pg
