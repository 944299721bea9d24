#pragma once
// COPY as a pass-through (after pgcopydb's pg_copy_data): the source's COPY TO STDOUT
// buffers go straight into the destination's COPY FROM STDIN, one buffer at a time,
// so memory stays flat whatever the table size.
#include "pg/connection.hpp"

#include <cstdint>
#include <functional>
#include <string_view>

namespace pgincr::pg {

// Called after each buffer with the running totals (rows, bytes); callers throttle.
using CopyProgress = std::function<void(std::int64_t rows, std::int64_t bytes)>;

// A destination COPY FROM STDIN. If it is destroyed before finish(), the COPY is
// aborted with PQputCopyEnd(conn, reason) so that nothing half-written is kept.
class CopyIn {
  public:
    CopyIn(Connection &conn, std::string_view copy_sql);
    ~CopyIn();
    CopyIn(const CopyIn &) = delete;
    CopyIn &operator=(const CopyIn &) = delete;

    void put(const char *data, std::size_t size);
    // Ends the COPY and returns the row count the server reports.
    std::int64_t finish();
    void abort(std::string_view reason) noexcept;

  private:
    Connection &conn_;
    std::string sql_;
    bool open_ = true;
};

// Streams `copy_out_sql` (COPY ... TO STDOUT) from `src` into `copy_in_sql`
// (COPY ... FROM STDIN) on `dst`, returning the rows the destination received.
std::int64_t copy_between(Connection &src, std::string_view copy_out_sql, Connection &dst,
                          std::string_view copy_in_sql, const CopyProgress &progress = {});

} // namespace pgincr::pg
