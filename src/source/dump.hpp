#pragma once
// pg_dump as the data stream of a full load: `pg_dump --data-only` for one table,
// under the snapshot exported by the load's source transaction. Its COPY section is
// streamed, buffer by buffer, into a destination COPY; no dump file touches the disk.
#include "pg/connection.hpp"
#include "pg/copy.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace pgincr::dump {

struct Request {
    pg::ConnInfo source;
    std::string snapshot;
    std::string schema;
    std::string table;
};

// The pg_dump program: $PGINCR_PG_DUMP, else pg_dump from PATH.
std::string program();

// argv without the program name. No password, host or user: those travel in the
// child's environment (see environment()).
std::vector<std::string> arguments(const Request &request);

// The child's environment: the parent's, plus PGHOST/PGPORT/PGUSER/PGDATABASE and
// PGPASSWORD from the configuration. The parent's own environment is never changed.
std::map<std::string, std::string> environment(const Request &request,
                                               const std::map<std::string, std::string> &parent);

// A pg_dump table pattern that matches exactly this schema and table, whatever
// characters they contain ("My Schema"."Or""ders").
std::string exact_pattern(const std::string &schema, const std::string &table);

// Splits pg_dump's plain output: skips the preamble up to the table's "COPY ... FROM
// stdin;" line, hands every data byte to `sink`, and stops at the "\." line. Works
// across arbitrary buffer boundaries.
class CopySectionParser {
  public:
    using Sink = std::function<void(const char *, std::size_t)>;
    explicit CopySectionParser(Sink sink) : sink_(std::move(sink)) {}
    void feed(const char *data, std::size_t size);
    bool started() const { return state_ != State::preamble; }
    bool finished() const { return state_ == State::done; }

  private:
    enum class State { preamble, data, done };
    Sink sink_;
    State state_ = State::preamble;
    std::string line_; // preamble line being assembled
    bool at_line_start_ = true;
    std::string pending_; // bytes at a line start that may be the "\." terminator
};

// Runs pg_dump and streams the table's rows into `sink`. Throws ChildProcessError
// with the exit status (or signal) and the tail of stderr when pg_dump fails; the
// caller then aborts the COPY. Returns the bytes streamed.
std::int64_t stream_table(const Request &request, pg::CopyIn &sink,
                          const pg::CopyProgress &progress = {});

} // namespace pgincr::dump
