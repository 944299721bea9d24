#pragma once
// A decoder of the messages of PostgreSQL's built-in logical decoding plugin, pgoutput
// (protocol version 1; src/backend/replication/pgoutput and logical/proto.c), as they
// arrive in the replication stream's XLogData. Pure: bytes in, typed messages out, so
// that it is unit-tested byte by byte. Column values stay in the server's text form;
// an unchanged TOASTed value is its own kind (`unchanged`), never a NULL.
#include "util/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pgincr::cdc {

struct Value {
    enum class Kind : char { null = 'n', unchanged = 'u', text = 't' };
    Kind kind = Kind::null;
    std::string text; // for Kind::text
};
using Tuple = std::vector<Value>;

struct Begin {
    std::uint64_t final_lsn = 0;  // where the commit record starts
    std::int64_t commit_time = 0; // µs since 2000-01-01
    std::uint32_t xid = 0;
};

struct Commit {
    std::uint8_t flags = 0;
    std::uint64_t commit_lsn = 0;
    std::uint64_t end_lsn = 0;
    std::int64_t commit_time = 0;
};

struct Column {
    bool key = false; // part of the replica identity
    std::string name;
    std::uint32_t type = 0;
    std::int32_t typmod = -1;
};

// Sent before the first change of a table in a session, and again when its definition
// changed: the changes that follow use these columns.
struct Relation {
    std::uint32_t id = 0;
    std::string schema;
    std::string name;
    char replica_identity = 'd'; // d default, n nothing, f full, i index
    std::vector<Column> columns;
};

struct Insert {
    std::uint32_t relation = 0;
    Tuple row;
};

struct Update {
    std::uint32_t relation = 0;
    char old_kind = 0;        // 'K' key columns, 'O' whole old row, 0 none sent
    std::optional<Tuple> old; // with old_kind
    Tuple row;
};

struct Delete {
    std::uint32_t relation = 0;
    char old_kind = 'K';
    Tuple old;
};

struct Truncate {
    bool cascade = false;
    bool restart_identity = false;
    std::vector<std::uint32_t> relations;
};

struct Origin {
    std::uint64_t lsn = 0;
    std::string name;
};

struct Type {
    std::uint32_t id = 0;
    std::string schema;
    std::string name;
};

// A logical decoding message (pg_logical_emit_message), which pgincr does not use.
struct Other {
    char tag = 0;
};

using Message =
    std::variant<Begin, Commit, Relation, Insert, Update, Delete, Truncate, Origin, Type, Other>;

// A message that does not parse: names the message type and the byte offset.
class DecodeError : public Error {
  public:
    using Error::Error;
};

Message decode(std::string_view bytes);

} // namespace pgincr::cdc
