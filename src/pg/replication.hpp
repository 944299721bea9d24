#pragma once
// The replication protocol through libpq, which already speaks it (after PostgreSQL's
// pg_recvlogical.c): logical slots with the pgoutput plugin, created with an exported
// snapshot so that a load taken in it and the stream after it meet exactly, and the
// CopyBoth stream, whose keepalives are answered and whose standby status updates
// report what was received and what is applied and durable (only that lets the slot
// release WAL). The session is a Connection opened with `ConnInfo::replication`.
#include "pg/connection.hpp"

#include <chrono>
#include <compare>
#include <cstdint>
#include <deque>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgincr::pg {

// A WAL position, as PostgreSQL prints it: "16/B374D848".
struct Lsn {
    std::uint64_t value = 0;
    static Lsn parse(std::string_view text); // throws Error on bad input
    std::string str() const;
    auto operator<=>(const Lsn &) const = default;
};

struct Slot {
    std::string name;
    Lsn consistent_point; // the stream starts with the first commit after it
    std::string snapshot; // valid until the next command on the slot's session
};

// Slot names are what PostgreSQL allows (lower-case letters, digits, underscores, at
// most 63 bytes); the replication commands take them unquoted. Throws ConfigError.
void check_slot_name(const std::string &name);

// CREATE_REPLICATION_SLOT … LOGICAL pgoutput EXPORT_SNAPSHOT on a replication session.
// A temporary slot is dropped by the server when the session ends: the cdc mode takes
// one for the snapshot and position of a table loaded after the stream began.
Slot create_logical_slot(Connection &replication, const std::string &name, bool temporary = false);
// DROP_REPLICATION_SLOT … WAIT: waits for a session still streaming from it to end.
void drop_slot(Connection &replication, const std::string &name);

class LogicalStream {
  public:
    // START_REPLICATION SLOT … LOGICAL `start` (proto_version '1', publication_names …).
    LogicalStream(Connection &replication, const std::string &slot, Lsn start,
                  const std::vector<std::string> &publications);
    ~LogicalStream();
    LogicalStream(const LogicalStream &) = delete;
    LogicalStream &operator=(const LogicalStream &) = delete;

    struct Data {
        Lsn start;         // of this message's WAL record
        std::string bytes; // one pgoutput message (cdc/pgoutput.hpp)
    };
    // The next message, or nullopt after `timeout` with none, or at once after a
    // keepalive (server_end() may have moved). Keepalives are answered inside, and a
    // status update goes out at least every `status_interval`.
    std::optional<Data> next(std::chrono::milliseconds timeout);
    // Everything up to `applied` is committed in the destination: reported to the
    // server as flushed and applied, so the slot may release the WAL before it.
    void confirm(Lsn applied);
    // A status update when none went out for a second: called while the destination
    // works on a long batch, so that wal_sender_timeout does not end the session.
    void keep_alive();
    // Asks the server for a keepalive now: how far it has read (server_end()) when it
    // has nothing to send.
    void ping() { send_status(true); }
    // The end of WAL as the server last reported it (XLogData or keepalive).
    Lsn server_end() const { return server_end_; }
    Lsn received() const { return received_; }
    // When the server last sent anything (data or keepalive): a stream that is only
    // followed, with nothing to send, is alive as long as it answers pings.
    std::chrono::steady_clock::time_point last_heard() const { return last_heard_; }
    // What the caller does while the destination works on a batch: a status update when
    // one is due, and what has arrived read, without waiting, into a queue that next()
    // serves first (up to `ahead_limit` bytes), so that the server goes on decoding
    // instead of waiting to send. Never throws (it runs inside a destination statement):
    // an error is thrown by the next call of next() or waiting(), once the queue is out.
    void while_busy() noexcept;
    // The socket while_busy() reads from, or -1 while its queue is full (or the stream
    // failed).
    int ahead_socket() const;
    // Whether data has arrived that next() has not returned yet.
    bool waiting();
    // Ends the stream (CopyDone) and reads the server's end of it. The session then
    // takes commands again, but a walsender does not start a second stream: open a
    // new session for that.
    void finish();

    std::chrono::milliseconds status_interval{10000};
    std::size_t ahead_limit = 8 * 1024 * 1024;

  private:
    // A message as it arrived: XLogData, or a keepalive (`data` empty), whose WAL end
    // counts only once the messages before it were returned.
    struct Incoming {
        bool keepalive = false;
        Lsn end;
        Data data;
    };
    std::optional<Incoming> read_one(); // one that has arrived, without waiting
    std::optional<Data> deliver(Incoming in);
    void read_ahead();
    void rethrow_failure() const; // the error while_busy() met, if the queue is out
    void send_status(bool reply_requested);
    std::deque<Incoming> ahead_;
    std::size_t ahead_bytes_ = 0;
    std::size_t ahead_data_ = 0; // of the queued messages, those that are not keepalives
    std::exception_ptr failed_;
    Connection &conn_;
    bool open_ = true;
    Lsn received_;
    Lsn applied_;
    Lsn server_end_;
    std::chrono::steady_clock::time_point last_status_;
    std::chrono::steady_clock::time_point last_heard_ = std::chrono::steady_clock::now();
};

} // namespace pgincr::pg
