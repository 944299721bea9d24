#pragma once
// Move-only RAII wrappers around libpq (after libpqxx's connection/result): a
// Connection owns its PGconn, a Result its PGresult, a Transaction rolls back unless
// committed. Every query goes through Connection::exec, which checks the result
// shape, drains PQgetResult, and throws PgError with SQLSTATE and statement.
#include "pg/error.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgincr::pg {

// Everything needed to open one session. The password is handed to libpq as a
// parameter and is never printed: describe() leaves it out.
struct ConnInfo {
    Side side = Side::source;
    std::string host;
    std::string port;
    std::string dbname;
    std::string user;
    std::string password; // empty: libpq falls back to PGPASSWORD / PGPASSFILE
    // TLS for this side only; empty: libpq's PGSSLMODE ... environment, as for both sides.
    std::string sslmode;
    std::string sslrootcert;
    std::string sslcert;
    std::string sslkey;
    bool read_only = false; // sets default_transaction_read_only = on (pgincr's source)
    // pgincr's own sessions are pinned (pg/session.hpp): whatever the role or database
    // sets, they behave the same. Test and admin sessions keep the server's defaults.
    bool pinned = false;
    // A walsender session (replication=database) for the cdc mode's slot and stream:
    // it takes the replication protocol's commands as well as plain SQL.
    bool replication = false;
    int lock_timeout_seconds = 300; // pinned sessions only: bounds every lock wait
    std::string describe() const;   // "user@host:port/db", no password
};

// What the caller expects back from a statement.
enum class Expect {
    command, // no rows (PGRES_COMMAND_OK)
    rows,    // any number of rows
    one_row, // exactly one row
    value,   // exactly one row with one column
};

class Result {
  public:
    Result() = default;
    explicit Result(PGresult *res) : res_(res) {}
    Result(Result &&) noexcept = default;
    Result &operator=(Result &&) noexcept = default;

    PGresult *get() const { return res_.get(); }
    int rows() const { return res_ ? PQntuples(res_.get()) : 0; }
    int columns() const { return res_ ? PQnfields(res_.get()) : 0; }
    bool is_null(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
    std::string_view text(int row, int col) const;
    std::optional<std::string> optional(int row, int col) const;
    bool boolean(int row, int col) const { return text(row, col) == "t"; }
    std::int64_t integer(int row, int col) const;
    std::int64_t affected_rows() const; // from the command tag, e.g. "INSERT 0 5"

  private:
    struct Clear {
        void operator()(PGresult *r) const noexcept { PQclear(r); }
    };
    std::unique_ptr<PGresult, Clear> res_;
};

using Params = std::vector<std::optional<std::string>>;

// What a caller does while one of its statements runs: `work` at least every `every`,
// and as soon as `socket()` (another session's, or -1 for none) has something to read.
struct WhileBusy {
    std::function<void()> work;
    std::function<int()> socket;
    std::chrono::milliseconds every{500};
};

class Connection {
  public:
    // Opens the session and sets it up as pg/session.hpp says for its kind.
    explicit Connection(const ConnInfo &info);
    ~Connection();
    // Not movable: the cancel slot registered for the signal handler is tied to this object.
    Connection(Connection &&) = delete;
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    PGconn *get() const { return conn_.get(); }
    Side side() const { return side_; }
    const ConnInfo &info() const { return info_; }

    Result exec(std::string_view sql, Expect expect = Expect::command);
    Result exec(std::string_view sql, const Params &params, Expect expect);
    // exec() of one long statement, doing `busy.work` while the server works (the cdc
    // mode keeps its replication stream alive, and read, through a long apply).
    Result exec_while(std::string_view sql, Expect expect, const WhileBusy &busy);
    // exec() in two halves, so that two servers can work at once (exec_both).
    void send(std::string_view sql, const Params &params);
    Result receive(std::string_view statement, Expect expect);

    // Identifier quoting by libpq (PQescapeIdentifier), never by hand.
    std::string quote_ident(std::string_view name) const;
    // A literal for the few statements that take no parameters (SET TRANSACTION SNAPSHOT).
    std::string quote_literal(std::string_view value) const;
    // "schema"."table"
    std::string qualified(std::string_view schema, std::string_view name) const;

    // Turns the current libpq error (no PGresult) into a PgError.
    [[noreturn]] void throw_error(std::string_view statement) const;
    [[noreturn]] void throw_result_error(const PGresult *res, std::string_view statement) const;

    int server_version() const { return PQserverVersion(conn_.get()); }
    // The server's encoding, as reported at connect time ("UTF8", "LATIN1" ...).
    std::string server_encoding() const;
    bool ok() const { return PQstatus(conn_.get()) == CONNECTION_OK; }

  private:
    struct Finish {
        void operator()(PGconn *c) const noexcept { PQfinish(c); }
    };
    std::unique_ptr<PGconn, Finish> conn_;
    Side side_ = Side::source;
    ConnInfo info_;
    int cancel_slot_ = -1;
};

// Runs one statement on each of two sessions at the same time: both are sent before
// either result is read. Both results are always drained; the first error is thrown.
std::pair<Result, Result> exec_both(Connection &a, std::string_view sql_a, const Params &params_a,
                                    Connection &b, std::string_view sql_b, const Params &params_b,
                                    Expect expect);

// BEGIN on construction, ROLLBACK on destruction unless commit() was called.
class Transaction {
  public:
    Transaction(Connection &conn, std::string_view begin_sql = "BEGIN");
    ~Transaction();
    Transaction(const Transaction &) = delete;
    Transaction &operator=(const Transaction &) = delete;

    void commit();
    bool open() const { return open_; }

  private:
    Connection &conn_;
    bool open_ = true;
};

// Cancels every open connection's running query. Async-signal-safe: it only calls
// PQcancel on objects prepared in advance.
void cancel_all_from_signal_handler();

} // namespace pgincr::pg
