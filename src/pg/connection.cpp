#include "pg/connection.hpp"

#include "pg/session.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fmt/format.h>
#include <poll.h>

namespace pgincr::pg {

namespace {

// Slots of prepared PGcancel objects for the signal handler. A slot is claimed with
// a compare-exchange so that the handler never sees a half-built object. Room for a
// parallel load's sessions (config::max_jobs on each side) and the run's own.
constexpr int cancel_slots = 64;
std::array<std::atomic<PGcancel *>, cancel_slots> cancels{};

int register_cancel(PGconn *conn) {
    PGcancel *cancel = PQgetCancel(conn);
    if (!cancel)
        return -1;
    for (int i = 0; i < cancel_slots; ++i) {
        PGcancel *expected = nullptr;
        if (cancels[i].compare_exchange_strong(expected, cancel))
            return i;
    }
    PQfreeCancel(cancel);
    return -1;
}

void unregister_cancel(int slot) {
    if (slot < 0)
        return;
    if (PGcancel *cancel = cancels[slot].exchange(nullptr))
        PQfreeCancel(cancel);
}

const char *status_name(ExecStatusType status) {
    return PQresStatus(status);
}

} // namespace

void cancel_all_from_signal_handler() {
    char errbuf[256];
    for (auto &slot : cancels) {
        if (PGcancel *cancel = slot.load())
            PQcancel(cancel, errbuf, sizeof errbuf);
    }
}

std::string ConnInfo::describe() const {
    return fmt::format("{}@{}:{}/{}", user.empty() ? "(default user)" : user,
                       host.empty() ? "(default host)" : host, port.empty() ? "5432" : port,
                       dbname);
}

std::string_view Result::text(int row, int col) const {
    return {PQgetvalue(res_.get(), row, col),
            static_cast<std::size_t>(PQgetlength(res_.get(), row, col))};
}

std::optional<std::string> Result::optional(int row, int col) const {
    if (is_null(row, col))
        return std::nullopt;
    return std::string(text(row, col));
}

std::int64_t Result::integer(int row, int col) const {
    auto s = text(row, col);
    std::int64_t value = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || ptr != s.data() + s.size())
        throw Error(fmt::format("expected an integer from the server, got '{}'", s));
    return value;
}

std::int64_t Result::affected_rows() const {
    const char *tuples = PQcmdTuples(res_.get());
    if (!tuples || !*tuples)
        return 0;
    return std::strtoll(tuples, nullptr, 10);
}

Connection::Connection(const ConnInfo &info) : side_(info.side), info_(info) {
    auto params = session::connect_params(info);
    std::vector<const char *> keys;
    std::vector<const char *> values;
    for (const auto &[k, v] : params) {
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);

    conn_.reset(PQconnectdbParams(keys.data(), values.data(), 0));
    if (!conn_)
        throw ConnectionError(side_, "", "out of memory while connecting");
    if (PQstatus(conn_.get()) != CONNECTION_OK) {
        std::string message = PQerrorMessage(conn_.get());
        while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
            message.pop_back();
        // libpq's message never includes the password; the context names the target.
        throw ConnectionError(side_, "08001",
                              fmt::format("cannot connect to {}: {}", info.describe(), message));
    }
    cancel_slot_ = register_cancel(conn_.get());
    session::finish_setup(*this);
}

std::string Connection::server_encoding() const {
    const char *enc = PQparameterStatus(conn_.get(), "server_encoding");
    return enc ? enc : "";
}

Connection::~Connection() {
    unregister_cancel(cancel_slot_);
}

void Connection::throw_error(std::string_view statement) const {
    std::string message = PQerrorMessage(conn_.get());
    while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
        message.pop_back();
    std::string sqlstate = PQstatus(conn_.get()) == CONNECTION_BAD ? "08006" : "";
    // A standby ends an idle-in-transaction session for recovery with a FATAL message
    // that arrives as a lost connection.
    auto hint = advice(side_, sqlstate, message, "", "", info_.lock_timeout_seconds);
    if (!hint.empty())
        message += ": " + hint;
    throw PgError(side_, sqlstate, message, std::string(statement));
}

void Connection::throw_result_error(const PGresult *res, std::string_view statement) const {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *context = PQresultErrorField(res, PG_DIAG_CONTEXT);
    std::string message = primary ? primary : PQresultErrorMessage(res);
    if (message.empty())
        message = PQerrorMessage(conn_.get());
    while (!message.empty() && message.back() == '\n')
        message.pop_back();
    if (detail)
        message += fmt::format(" ({})", detail);
    std::string sqlstate = state ? state : "";
    auto hint = advice(side_, sqlstate, message, context ? context : "", server_encoding(),
                       info_.lock_timeout_seconds);
    if (!hint.empty())
        message += ": " + hint;
    throw PgError(side_, sqlstate, message, std::string(statement));
}

Result Connection::exec(std::string_view sql, Expect expect) {
    return exec(sql, {}, expect);
}

Result Connection::exec(std::string_view sql, const Params &params, Expect expect) {
    send(sql, params);
    return receive(sql, expect);
}

void Connection::send(std::string_view sql, const Params &params) {
    std::string statement(sql);
    std::vector<const char *> values;
    values.reserve(params.size());
    for (const auto &p : params)
        values.push_back(p ? p->c_str() : nullptr);
    // Without parameters the simple protocol is used, so that a script of several
    // statements (test seeds, SQL files) runs as one.
    int sent = values.empty() ? PQsendQuery(conn_.get(), statement.c_str())
                              : PQsendQueryParams(conn_.get(), statement.c_str(),
                                                  static_cast<int>(values.size()), nullptr,
                                                  values.data(), nullptr, nullptr, 0);
    if (!sent)
        throw_error(statement);
}

Result Connection::exec_while(std::string_view sql, Expect expect, const WhileBusy &busy) {
    send(sql, {});
    for (;;) {
        if (!PQconsumeInput(conn_.get()))
            throw_error(sql);
        if (!PQisBusy(conn_.get()))
            break;
        pollfd pfd[2] = {{PQsocket(conn_.get()), POLLIN, 0},
                         {busy.socket ? busy.socket() : -1, POLLIN, 0}};
        int n = ::poll(pfd, 2, static_cast<int>(busy.every.count()));
        if (n < 0 && errno != EINTR)
            throw_error(sql);
        if ((n == 0 || (n > 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))) && busy.work)
            busy.work();
    }
    return receive(sql, expect);
}

Result Connection::receive(std::string_view statement, Expect expect) {
    // Drain every result, keeping the first error (pgBackRest pgClientQuery) and the
    // last statement's result.
    Result first;
    Result error;
    while (PGresult *raw = PQgetResult(conn_.get())) {
        Result res(raw);
        auto status = PQresultStatus(raw);
        if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE) {
            if (!error.get())
                error = std::move(res);
        } else {
            first = std::move(res);
        }
    }
    if (error.get())
        throw_result_error(error.get(), statement);
    if (!first.get())
        throw_error(statement);

    auto status = PQresultStatus(first.get());
    auto wrong = [&](std::string_view what) {
        throw PgError(side_, "",
                      fmt::format("expected {}, got {} with {} row(s)", what, status_name(status),
                                  first.rows()),
                      std::string(statement));
    };
    switch (expect) {
    case Expect::command:
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
            wrong("a command");
        break;
    case Expect::rows:
        if (status != PGRES_TUPLES_OK)
            wrong("rows");
        break;
    case Expect::one_row:
        if (status != PGRES_TUPLES_OK || first.rows() != 1)
            wrong("one row");
        break;
    case Expect::value:
        if (status != PGRES_TUPLES_OK || first.rows() != 1 || first.columns() != 1)
            wrong("one value");
        break;
    }
    return first;
}

std::pair<Result, Result> exec_both(Connection &a, std::string_view sql_a, const Params &params_a,
                                    Connection &b, std::string_view sql_b, const Params &params_b,
                                    Expect expect) {
    a.send(sql_a, params_a);
    try {
        b.send(sql_b, params_b);
    } catch (...) {
        try {
            a.receive(sql_a, expect);
        } catch (...) {
        }
        throw;
    }
    Result ra;
    try {
        ra = a.receive(sql_a, expect);
    } catch (...) {
        // b's results must still be drained, or its session is left mid-query.
        try {
            b.receive(sql_b, expect);
        } catch (...) {
        }
        throw;
    }
    return {std::move(ra), b.receive(sql_b, expect)};
}

std::string Connection::quote_ident(std::string_view name) const {
    char *escaped = PQescapeIdentifier(conn_.get(), name.data(), name.size());
    if (!escaped)
        throw_error("PQescapeIdentifier");
    std::string out(escaped);
    PQfreemem(escaped);
    return out;
}

std::string Connection::quote_literal(std::string_view value) const {
    char *escaped = PQescapeLiteral(conn_.get(), value.data(), value.size());
    if (!escaped)
        throw_error("PQescapeLiteral");
    std::string out(escaped);
    PQfreemem(escaped);
    return out;
}

std::string Connection::qualified(std::string_view schema, std::string_view name) const {
    return quote_ident(schema) + "." + quote_ident(name);
}

Transaction::Transaction(Connection &conn, std::string_view begin_sql) : conn_(conn) {
    conn_.exec(begin_sql);
}

Transaction::~Transaction() {
    if (!open_)
        return;
    try {
        // A broken connection cannot roll back; the server does it when it notices.
        if (PQstatus(conn_.get()) == CONNECTION_OK)
            conn_.exec("ROLLBACK");
    } catch (...) {
    }
}

void Transaction::commit() {
    open_ = false;
    conn_.exec("COMMIT");
}

} // namespace pgincr::pg
