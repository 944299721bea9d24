#include "modes/parallel_load.hpp"

#include "pg/copy.hpp"
#include "source/filter.hpp"
#include "util/fault.hpp"
#include "util/log.hpp"
#include "util/signals.hpp"

#include <atomic>
#include <chrono>
#include <exception>
#include <fmt/format.h>
#include <mutex>
#include <thread>

namespace pgincr::parallel_load {

std::vector<Range> split(std::int64_t blocks, int parts) {
    if (parts < 1)
        parts = 1;
    if (blocks < parts)
        parts = static_cast<int>(blocks < 1 ? 1 : blocks);
    std::vector<Range> ranges;
    std::int64_t from = 0;
    for (int i = 0; i < parts; ++i) {
        Range r{from, std::nullopt};
        if (i + 1 < parts) {
            std::int64_t to = blocks * (i + 1) / parts;
            r.to = to;
            from = to;
        }
        ranges.push_back(r);
    }
    return ranges;
}

std::string predicate(const Range &range) {
    if (range.from == 0 && !range.to)
        return "";
    std::string sql = fmt::format("ctid >= '({},0)'::pg_catalog.tid", range.from);
    if (range.to)
        sql += fmt::format(" AND ctid < '({},0)'::pg_catalog.tid", *range.to);
    return sql;
}

std::vector<Range> plan(pg::Connection &src, const catalog::SourceTable &table,
                        const config::Settings &settings, const std::string &tag, int jobs) {
    std::vector<Range> whole{Range{}};
    if (jobs <= 1)
        return whole;
    if (src.server_version() < 140000) {
        log::info(tag,
                  "one stream: the source is PostgreSQL {}, and CTID range scans need 14 or "
                  "later (each part would read the whole table)",
                  src.server_version() / 10000);
        return whole;
    }
    // The current size, not relpages (which only VACUUM and ANALYZE update); pages added
    // after this are read by the last, open-ended range.
    auto res = src.exec("SELECT pg_catalog.pg_relation_size($1::pg_catalog.regclass), "
                        "pg_catalog.current_setting('block_size')::bigint",
                        {src.qualified(table.schema, table.name)}, pg::Expect::one_row);
    std::int64_t bytes = res.integer(0, 0);
    std::int64_t block_size = res.integer(0, 1);
    if (bytes < static_cast<std::int64_t>(settings.split_min_mb) * 1024 * 1024) {
        log::debug(tag, "one stream: {} MB is under PGINCR_SPLIT_MIN_MB ({})",
                   bytes / (1024 * 1024), settings.split_min_mb);
        return whole;
    }
    auto ranges = split(bytes / block_size, jobs * parts_per_job);
    log::info(tag, "{} parallel streams over {} CTID ranges ({} MB)", jobs, ranges.size(),
              bytes / (1024 * 1024));
    return ranges;
}

namespace {

// What the threads share. The first error wins; `stop` tells the others to give up at
// their next row.
struct Shared {
    std::mutex mutex;
    std::exception_ptr error;
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> next{0};
    std::atomic<std::int64_t> rows{0};
    std::atomic<std::int64_t> bytes{0};
    std::atomic<std::int64_t> copied{0};
    std::atomic<int> running{0};

    void fail(std::exception_ptr e) {
        std::lock_guard<std::mutex> guard(mutex);
        if (!error)
            error = std::move(e);
        stop = true;
    }
};

// Thrown inside a part's COPY when another thread failed: copy_between then aborts
// both sides of that part, and the thread ends without an error of its own.
struct Stopped {};

struct Job {
    pg::Connection *own_source = nullptr; // the snapshot's session, or null: open one
    pg::ConnInfo source;
    std::string snapshot_id;
    pg::ConnInfo dest;
    const config::Table *cfg = nullptr;
    const std::vector<Range> *ranges = nullptr;
    const catalog::SourceTable *table = nullptr;
    std::string relation;    // the source table, qualified
    std::string copy_in_sql; // into the shadow table
};

void run_job(const Job &job, Shared &shared) {
    try {
        std::optional<pg::Connection> opened;
        std::optional<pg::SnapshotReader> reader;
        pg::Connection *src = job.own_source;
        if (!src) {
            opened.emplace(job.source);
            reader.emplace(*opened, job.snapshot_id);
            src = &*opened;
            // As pg_dump's workers do: an ACCESS EXCLUSIVE request (a migration) queued
            // behind the load's own lock would queue this one behind it, and the load
            // would wait on itself until lock_timeout. Fail at once instead; the next
            // run loads the table again.
            try {
                src->exec(
                    fmt::format("LOCK TABLE ONLY {} IN ACCESS SHARE MODE NOWAIT", job.relation));
            } catch (const pg::PgError &e) {
                if (e.sqlstate() != "55P03")
                    throw;
                throw catalog::TableError(fmt::format(
                    "[source] a parallel stream could not lock {} ({}): another session waits "
                    "for a stronger lock on it (ALTER TABLE, TRUNCATE, ...) behind this load; "
                    "the table is retried on the next run",
                    job.relation, e.server_message()));
            }
        }
        pg::Connection dst(job.dest);
        pg::Transaction tx(dst);
        // A filter's values are transaction-local settings of each source session.
        std::string filter_sql;
        if (job.cfg->filter)
            filter_sql = "(" + filter::for_copy(*src, job.relation, *job.cfg->filter) + ")";
        for (;;) {
            if (shared.stop)
                return;
            std::size_t i = shared.next++;
            if (i >= job.ranges->size())
                break;
            std::string range = predicate((*job.ranges)[i]);
            std::string where = filter_sql;
            if (!range.empty())
                where = where.empty() ? range : where + " AND " + range;
            // Totals go to the shared counters every 1024 rows, not on every row.
            std::int64_t seen_rows = 0, seen_bytes = 0, now_rows = 0, now_bytes = 0;
            auto flush = [&] {
                shared.rows += now_rows - seen_rows;
                shared.bytes += now_bytes - seen_bytes;
                seen_rows = now_rows;
                seen_bytes = now_bytes;
            };
            shared.copied += pg::copy_between(
                *src, apply::copy_out_sql(*src, *job.table, where.empty() ? "" : " WHERE " + where),
                dst, job.copy_in_sql, [&](std::int64_t rows, std::int64_t bytes) {
                    now_rows = rows;
                    now_bytes = bytes;
                    if ((rows & 1023) != 0)
                        return;
                    if (shared.stop)
                        throw Stopped{};
                    flush();
                });
            flush();
            // The kill -9 and snapshot tests hold or end the load here, with parts
            // still copying on the other threads.
            fault::point("load-part-copied");
            if (shared.stop)
                return;
        }
        tx.commit();
        if (reader)
            reader->close();
    } catch (const Stopped &) {
    } catch (...) {
        shared.fail(std::current_exception());
    }
}

} // namespace

std::int64_t copy(pg::Snapshot &snapshot, const pg::ConnInfo &dest, const config::Table &cfg,
                  const catalog::SourceTable &table, const std::vector<Range> &ranges, int jobs,
                  const std::string &shadow, Progress &progress,
                  const apply::Heartbeat &heartbeat) {
    pg::Connection &src = snapshot.conn();
    Job base;
    base.source = src.info();
    base.snapshot_id = snapshot.exported();
    base.dest = dest;
    base.cfg = &cfg;
    base.ranges = &ranges;
    base.relation = src.qualified(table.schema, table.name);
    base.table = &table;
    base.copy_in_sql = apply::copy_in_sql(src, table, shadow);
    if (jobs > static_cast<int>(ranges.size()))
        jobs = static_cast<int>(ranges.size());

    Shared shared;
    std::vector<Job> work(static_cast<std::size_t>(jobs), base);
    work[0].own_source = &src;
    {
        std::vector<std::jthread> threads;
        // Joined however this block is left: the threads own their sessions, and the
        // caller's must not be used while one of them reads on it.
        struct StopOnExit {
            Shared &shared;
            ~StopOnExit() {
                if (std::uncaught_exceptions() > 0)
                    shared.stop = true;
            }
        };
        shared.running = jobs;
        for (const auto &job : work)
            threads.emplace_back([&shared, &job] {
                run_job(job, shared);
                --shared.running;
            });
        StopOnExit stop_on_exit{shared};
        using clock = std::chrono::steady_clock;
        auto last_beat = clock::now();
        while (shared.running > 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            progress.update(shared.rows, shared.bytes);
            if (!heartbeat || shared.stop)
                continue;
            if (signals::interrupted() || clock::now() - last_beat > std::chrono::seconds(5)) {
                try {
                    heartbeat();
                } catch (...) {
                    shared.fail(std::current_exception());
                }
                last_beat = clock::now();
            }
        }
    }
    // A signal cancels every session's query: report the signal, not a cancelled COPY.
    if (shared.error && heartbeat && signals::interrupted())
        heartbeat();
    if (shared.error)
        std::rethrow_exception(shared.error);
    return shared.copied;
}

} // namespace pgincr::parallel_load
