#include "pg/replication.hpp"

#include "util/error.hpp"

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <sys/select.h>

namespace pgincr::pg {

namespace {

// The protocol's timestamps count microseconds from 2000-01-01 00:00 UTC.
constexpr std::int64_t unix_to_pg_epoch_us = 946684800LL * 1000000LL;

std::int64_t pg_now_us() {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    return us - unix_to_pg_epoch_us;
}

void put64(std::string &out, std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8)
        out += static_cast<char>((v >> shift) & 0xff);
}

std::uint64_t get64(const char *p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

} // namespace

Lsn Lsn::parse(std::string_view text) {
    auto slash = text.find('/');
    auto bad = [&] { return Error(fmt::format("not a WAL position: '{}'", text)); };
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size() || slash > 8 ||
        text.size() - slash - 1 > 8)
        throw bad();
    std::uint64_t hi = 0, lo = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (i == slash)
            continue;
        char c = text[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            throw bad();
        auto &part = i < slash ? hi : lo;
        part = part * 16 + static_cast<std::uint64_t>(d);
    }
    return Lsn{(hi << 32) | lo};
}

std::string Lsn::str() const {
    return fmt::format("{:X}/{:X}", value >> 32, value & 0xffffffffULL);
}

void check_slot_name(const std::string &name) {
    bool ok = !name.empty() && name.size() <= 63;
    for (char c : name)
        ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
    if (!ok)
        throw ConfigError(fmt::format("replication slot name '{}': use lower-case letters, digits "
                                      "and underscores, at most 63 bytes",
                                      name));
}

Slot create_logical_slot(Connection &replication, const std::string &name, bool temporary) {
    check_slot_name(name);
    // The pre-15 spelling, which every supported server still takes.
    auto res = replication.exec(fmt::format("CREATE_REPLICATION_SLOT {}{} LOGICAL pgoutput "
                                            "EXPORT_SNAPSHOT",
                                            name, temporary ? " TEMPORARY" : ""),
                                Expect::one_row);
    return Slot{std::string(res.text(0, 0)), Lsn::parse(res.text(0, 1)),
                std::string(res.text(0, 2))};
}

void drop_slot(Connection &replication, const std::string &name) {
    check_slot_name(name);
    replication.exec(fmt::format("DROP_REPLICATION_SLOT {} WAIT", name));
}

LogicalStream::LogicalStream(Connection &replication, const std::string &slot, Lsn start,
                             const std::vector<std::string> &publications)
    : conn_(replication), received_(start), applied_(start),
      last_status_(std::chrono::steady_clock::now()) {
    check_slot_name(slot);
    std::string names;
    for (const auto &p : publications)
        names += (names.empty() ? "" : ",") + replication.quote_ident(p);
    std::string sql = fmt::format("START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', "
                                  "publication_names {})",
                                  slot, start.str(), replication.quote_literal(names));
    Result res(PQexec(conn_.get(), sql.c_str()));
    if (!res.get() || PQresultStatus(res.get()) != PGRES_COPY_BOTH) {
        open_ = false;
        if (res.get())
            conn_.throw_result_error(res.get(), sql);
        conn_.throw_error(sql);
    }
}

LogicalStream::~LogicalStream() {
    if (!open_)
        return;
    try {
        finish();
    } catch (...) {
    }
}

std::optional<LogicalStream::Data> LogicalStream::next(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (std::chrono::steady_clock::now() - last_status_ >= status_interval)
            send_status(false);
        if (!ahead_.empty()) {
            auto in = std::move(ahead_.front());
            ahead_.pop_front();
            ahead_bytes_ -= in.data.bytes.size() + sizeof(Incoming);
            ahead_data_ -= in.keepalive ? 0 : 1;
            return deliver(std::move(in));
        }
        rethrow_failure();
        if (auto in = read_one())
            return deliver(std::move(*in));
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline)
            return std::nullopt;
        auto wait = std::min<std::chrono::steady_clock::duration>(deadline - now, status_interval);
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(wait).count();
        int fd = PQsocket(conn_.get());
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fd, &set);
        timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
        if (select(fd + 1, &set, nullptr, nullptr, &tv) < 0 && errno != EINTR)
            throw PgError(conn_.side(), "", fmt::format("select(): {}", std::strerror(errno)),
                          "the replication stream");
        if (!PQconsumeInput(conn_.get()))
            conn_.throw_error("the replication stream");
    }
}

std::optional<LogicalStream::Incoming> LogicalStream::read_one() {
    char *raw = nullptr;
    int n = PQgetCopyData(conn_.get(), &raw, 1);
    if (n == 0)
        return std::nullopt;
    if (n == -2)
        conn_.throw_error("the replication stream");
    if (n == -1) {
        // The server ended the COPY: its final result says why.
        open_ = false;
        Result res(PQgetResult(conn_.get()));
        if (res.get() && PQresultStatus(res.get()) == PGRES_FATAL_ERROR)
            conn_.throw_result_error(res.get(), "the replication stream");
        throw PgError(conn_.side(), "08006",
                      fmt::format("the server ended the replication stream ({}; {})",
                                  res.get() ? PQresStatus(PQresultStatus(res.get())) : "no result",
                                  PQerrorMessage(conn_.get())),
                      "START_REPLICATION");
    }
    std::string buf(raw, static_cast<std::size_t>(n));
    PQfreemem(raw);
    last_heard_ = std::chrono::steady_clock::now();
    if (buf[0] == 'k' && buf.size() >= 18) {
        // Primary keepalive: walEnd, sendTime, replyRequested. The reply goes out at
        // once (it reports only what was confirmed), even when the keepalive waits in
        // the queue behind data.
        if (buf[17])
            send_status(false);
        return Incoming{true, Lsn{get64(buf.data() + 1)}, {}};
    }
    if (buf[0] == 'w' && buf.size() >= 25) {
        // XLogData: dataStart, walEnd, sendTime, then the plugin's message.
        Lsn start{get64(buf.data() + 1)};
        return Incoming{false, Lsn{get64(buf.data() + 9)}, Data{start, buf.substr(25)}};
    }
    throw PgError(conn_.side(), "",
                  fmt::format("unexpected replication message '{}' ({} bytes)", buf[0], buf.size()),
                  "the replication stream");
}

std::optional<LogicalStream::Data> LogicalStream::deliver(Incoming in) {
    server_end_ = std::max(server_end_, in.end);
    // The caller may be waiting for exactly a keepalive (ping(), then server_end()).
    if (in.keepalive)
        return std::nullopt;
    received_ = std::max(received_, in.data.start);
    return std::move(in.data);
}

void LogicalStream::read_ahead() {
    // Not a byte more than the queue takes: PQconsumeInput would read all the socket has
    // into libpq's own buffer, which grows to hold it.
    if (ahead_bytes_ >= ahead_limit)
        return;
    if (!PQconsumeInput(conn_.get()))
        conn_.throw_error("the replication stream");
    while (ahead_bytes_ < ahead_limit) {
        auto in = read_one();
        if (!in)
            break;
        ahead_bytes_ += in->data.bytes.size() + sizeof(Incoming);
        ahead_data_ += in->keepalive ? 0 : 1;
        ahead_.push_back(std::move(*in));
    }
}

void LogicalStream::while_busy() noexcept {
    if (failed_)
        return;
    try {
        keep_alive();
        read_ahead();
    } catch (...) {
        failed_ = std::current_exception();
    }
}

void LogicalStream::rethrow_failure() const {
    if (failed_)
        std::rethrow_exception(failed_);
}

int LogicalStream::ahead_socket() const {
    return !failed_ && ahead_bytes_ < ahead_limit ? PQsocket(conn_.get()) : -1;
}

bool LogicalStream::waiting() {
    if (ahead_data_ == 0) {
        if (ahead_.empty())
            rethrow_failure();
        read_ahead();
    }
    return ahead_data_ > 0;
}

void LogicalStream::confirm(Lsn applied) {
    applied_ = std::max(applied_, applied);
    received_ = std::max(received_, applied_);
    send_status(false);
}

void LogicalStream::keep_alive() {
    if (std::chrono::steady_clock::now() - last_status_ >= std::chrono::seconds(1))
        send_status(false);
}

void LogicalStream::send_status(bool reply_requested) {
    std::string msg = "r";
    put64(msg, received_.value);
    put64(msg, applied_.value);
    put64(msg, applied_.value);
    put64(msg, static_cast<std::uint64_t>(pg_now_us()));
    msg += static_cast<char>(reply_requested ? 1 : 0);
    if (PQputCopyData(conn_.get(), msg.data(), static_cast<int>(msg.size())) != 1 ||
        PQflush(conn_.get()) != 0)
        conn_.throw_error("standby status update");
    last_status_ = std::chrono::steady_clock::now();
}

void LogicalStream::finish() {
    if (!open_)
        return;
    open_ = false;
    if (PQputCopyEnd(conn_.get(), nullptr) != 1 || PQflush(conn_.get()) != 0)
        conn_.throw_error("CopyDone");
    // The server answers CopyDone with its own, after which the walsender is back to
    // taking commands; what it still had in flight is read and dropped.
    for (;;) {
        char *raw = nullptr;
        int n = PQgetCopyData(conn_.get(), &raw, 0);
        if (raw)
            PQfreemem(raw);
        if (n < 0)
            break;
    }
    while (PGresult *r = PQgetResult(conn_.get())) {
        Result res(r);
        if (PQresultStatus(r) == PGRES_FATAL_ERROR)
            conn_.throw_result_error(r, "CopyDone");
    }
}

} // namespace pgincr::pg
