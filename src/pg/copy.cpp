#include "pg/copy.hpp"

#include <fmt/format.h>

namespace pgincr::pg {

namespace {

struct CopyBuffer {
    char *data = nullptr;
    ~CopyBuffer() {
        if (data)
            PQfreemem(data);
    }
};

// Reads the COPY's final result; anything but COMMAND_OK becomes a PgError.
Result finish_copy(Connection &conn, const std::string &sql) {
    Result last;
    Result error;
    while (PGresult *raw = PQgetResult(conn.get())) {
        Result res(raw);
        if (PQresultStatus(raw) != PGRES_COMMAND_OK && !error.get())
            error = std::move(res);
        else if (!last.get())
            last = std::move(res);
    }
    if (error.get())
        conn.throw_result_error(error.get(), sql);
    return last;
}

} // namespace

CopyIn::CopyIn(Connection &conn, std::string_view copy_sql) : conn_(conn), sql_(copy_sql) {
    if (!PQsendQuery(conn_.get(), sql_.c_str()))
        conn_.throw_error(sql_);
    Result res(PQgetResult(conn_.get()));
    if (!res.get() || PQresultStatus(res.get()) != PGRES_COPY_IN) {
        open_ = false;
        // Drain so the connection stays usable for the caller's rollback.
        Result error = std::move(res);
        while (PGresult *raw = PQgetResult(conn_.get()))
            PQclear(raw);
        if (error.get())
            conn_.throw_result_error(error.get(), sql_);
        conn_.throw_error(sql_);
    }
}

CopyIn::~CopyIn() {
    if (open_)
        abort("pgincr: copy abandoned");
}

void CopyIn::put(const char *data, std::size_t size) {
    if (PQputCopyData(conn_.get(), data, static_cast<int>(size)) != 1)
        conn_.throw_error(sql_);
}

std::int64_t CopyIn::finish() {
    open_ = false;
    if (PQputCopyEnd(conn_.get(), nullptr) != 1)
        conn_.throw_error(sql_);
    return finish_copy(conn_, sql_).affected_rows();
}

void CopyIn::abort(std::string_view reason) noexcept {
    if (!open_)
        return;
    open_ = false;
    std::string why(reason);
    if (PQputCopyEnd(conn_.get(), why.c_str()) == 1) {
        while (PGresult *raw = PQgetResult(conn_.get()))
            PQclear(raw);
    }
}

std::int64_t copy_between(Connection &src, std::string_view copy_out_sql, Connection &dst,
                          std::string_view copy_in_sql, const CopyProgress &progress) {
    std::string out_sql(copy_out_sql);
    if (!PQsendQuery(src.get(), out_sql.c_str()))
        src.throw_error(out_sql);
    {
        Result res(PQgetResult(src.get()));
        if (!res.get() || PQresultStatus(res.get()) != PGRES_COPY_OUT) {
            Result error = std::move(res);
            while (PGresult *raw = PQgetResult(src.get()))
                PQclear(raw);
            if (error.get())
                src.throw_result_error(error.get(), out_sql);
            src.throw_error(out_sql);
        }
    }

    std::int64_t bytes = 0;
    std::int64_t rows = 0;
    try {
        CopyIn in(dst, copy_in_sql);
        for (;;) {
            CopyBuffer buf;
            int n = PQgetCopyData(src.get(), &buf.data, 0);
            if (n > 0) {
                in.put(buf.data, static_cast<std::size_t>(n));
                bytes += n;
                ++rows; // libpq hands out one row per buffer
                if (progress)
                    progress(rows, bytes);
                continue;
            }
            if (n == -1)
                break; // source finished; its final status is read below
            src.throw_error(out_sql);
        }
        // The source's verdict comes first: if it failed, the target COPY is aborted
        // by CopyIn's destructor and nothing is kept.
        finish_copy(src, out_sql);
        return in.finish();
    } catch (...) {
        // Leave the source connection usable (drained) for its rollback.
        if (PQisBusy(src.get()) || PQtransactionStatus(src.get()) == PQTRANS_ACTIVE) {
            char errbuf[256];
            if (PGcancel *cancel = PQgetCancel(src.get())) {
                PQcancel(cancel, errbuf, sizeof errbuf);
                PQfreeCancel(cancel);
            }
            CopyBuffer buf;
            while (PQgetCopyData(src.get(), &buf.data, 0) > 0) {
                PQfreemem(buf.data);
                buf.data = nullptr;
            }
            while (PGresult *raw = PQgetResult(src.get()))
                PQclear(raw);
        }
        throw;
    }
}

} // namespace pgincr::pg
