#include "source/watermark.hpp"

#include "source/filter.hpp"

#include "util/error.hpp"

#include <chrono>
#include <fmt/format.h>
#include <thread>

namespace pgincr::sql {
extern const std::string_view horizon;
}

namespace pgincr::watermark {

namespace {

// How long a standby may take to replay up to the primary's position.
constexpr int replay_wait_seconds = 120;

void wait_for_replay(pg::Connection &standby, const std::string &lsn) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(replay_wait_seconds);
    for (;;) {
        auto res = standby.exec(
            "SELECT pg_catalog.pg_last_wal_replay_lsn() >= $1::pg_catalog.pg_lsn - "
            // An insert position just past a page header means the last record ended
            // on the page boundary, where replay stops: that counts as reached.
            "CASE WHEN ($1::pg_catalog.pg_lsn - '0/0'::pg_catalog.pg_lsn) % 8192 IN (24, 40) "
            "THEN ($1::pg_catalog.pg_lsn - '0/0'::pg_catalog.pg_lsn) % 8192 ELSE 0 END, "
            "pg_catalog.pg_last_wal_replay_lsn()::pg_catalog.text",
            {lsn}, pg::Expect::one_row);
        if (res.boolean(0, 0))
            return;
        if (std::chrono::steady_clock::now() > deadline)
            throw Error(fmt::format(
                "[source] the standby replayed only up to {} after {} s, the primary was at {}: "
                "the late-commit horizon read on the primary cannot be used yet; the table is "
                "retried on the next run",
                res.optional(0, 1).value_or("(nothing)"), replay_wait_seconds, lsn));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

} // namespace

std::string standby_warning(const config::Settings &settings) {
    return fmt::format(
        "the source is a hot standby, whose pg_stat_activity cannot see the primary's "
        "transactions: the late-commit guard re-reads a {} s window (PGINCR_FALLBACK_LOOKBACK_"
        "SECONDS) counted back from the last commit the standby replayed, so a primary "
        "transaction open longer than that can be missed; set SOURCE_PRIMARY_HOST (and "
        "SOURCE_PRIMARY_PORT) to read the horizon on the primary instead",
        settings.fallback_lookback_seconds);
}

bool in_recovery(pg::Connection &conn) {
    // From PostgreSQL 14 on the server reports it at connect time (and again when it
    // is promoted): no round trip.
    if (const char *hot = PQparameterStatus(conn.get(), "in_hot_standby"))
        return std::string_view(hot) == "on";
    return conn.exec("SELECT pg_catalog.pg_is_in_recovery()", pg::Expect::value).boolean(0, 0);
}

Horizon read_horizon(pg::Connection &src, pg::Connection *primary, int fallback_lookback_seconds) {
    pg::Connection &on = primary ? *primary : src;
    auto res = on.exec(
        sql::horizon, {std::to_string(fallback_lookback_seconds), std::to_string(horizon_slack_ms)},
        pg::Expect::one_row);
    Horizon h;
    h.at = res.text(0, 0);
    h.sees_all = res.boolean(0, 1);
    h.open_transactions = res.integer(0, 2);
    h.oldest_start = res.optional(0, 3);
    h.standby = res.boolean(0, 4);
    if (!res.is_null(0, 9)) {
        OpenTransaction o;
        if (!res.is_null(0, 6))
            o.pid = static_cast<int>(res.integer(0, 6));
        o.application_name = res.optional(0, 7).value_or("");
        o.state = res.optional(0, 8).value_or("");
        o.age_seconds = std::stod(std::string(res.text(0, 9)));
        h.oldest = o;
    }
    if (primary) {
        if (h.standby)
            throw Error(fmt::format("SOURCE_PRIMARY_HOST: {} is itself in recovery; point it at "
                                    "the primary server",
                                    primary->info().describe()));
        h.standby = true;
        h.from_primary = true;
        wait_for_replay(src, std::string(res.text(0, 5)));
    }
    return h;
}

const Horizon &HorizonReader::read(pg::Connection &src, pg::Connection *primary,
                                   int fallback_lookback_seconds) {
    auto now = std::chrono::steady_clock::now();
    reused_ = last_ && now - read_at_ < max_age_;
    if (!reused_) {
        // Taken before the read: the age then counts from the earliest moment it may hold.
        read_at_ = now;
        last_ = read_horizon(src, primary, fallback_lookback_seconds);
    }
    return *last_;
}

std::string key_type(const catalog::SourceTable &table) {
    return table.key->source_type;
}

std::optional<std::string> horizon_as_key(const catalog::SourceTable &table,
                                          const std::string &param) {
    switch (table.key_kind) {
    case catalog::KeyKind::timestamptz:
        return fmt::format("{}::pg_catalog.timestamptz", param);
    case catalog::KeyKind::timestamp:
        // A timestamp without time zone is read in the source session's TimeZone
        // (the database's default unless PGTZ says otherwise).
        return fmt::format("{}::pg_catalog.timestamptz::pg_catalog.timestamp", param);
    case catalog::KeyKind::date:
        return fmt::format("{}::pg_catalog.timestamptz::pg_catalog.date", param);
    default:
        return std::nullopt;
    }
}

Position read_position(pg::Connection &src, const catalog::SourceTable &table,
                       const std::optional<std::string> &old_mark, const Horizon &horizon,
                       int lookback_seconds, const std::optional<config::Filter> &filter) {
    // Parameters: the filter's own $1..$n come first, then ours.
    pg::Params params = filter ? filter::params(*filter) : pg::Params{};
    auto next = [&](std::optional<std::string> v) {
        params.push_back(std::move(v));
        return fmt::format("${}", params.size());
    };
    std::string kt = key_type(table);
    std::string key = src.quote_ident(table.key->name);
    std::string rel = src.qualified(table.schema, table.name);
    std::string mark_p = next(old_mark);
    // Integer keys have no time to hold back by; only time keys take the horizon.
    std::optional<std::string> hz;
    if (table.is_time_key())
        hz = horizon_as_key(table, next(horizon.at));

    std::string where =
        fmt::format("WHERE ({mark}::{kt} IS NULL OR {key} >= {mark}::{kt})",
                    fmt::arg("mark", mark_p), fmt::arg("kt", kt), fmt::arg("key", key));
    if (filter)
        where += " AND (" + filter->where + ")";

    // candidate: the largest key seen, held back by the horizon; never below the old
    // mark. With no rows at all, least() ignores the NULL and the mark moves up to the
    // horizon: every row not yet visible will carry a key at or after it.
    std::string candidate = hz ? fmt::format("LEAST(s.m, {})", *hz) : "s.m";
    std::string lag = "NULL::float8";
    if (table.key_kind == catalog::KeyKind::date)
        lag = "((s.m - n.mark) * 86400)::float8";
    else if (table.is_time_key())
        lag = "pg_catalog.date_part('epoch', s.m - n.mark)::float8";
    std::string read_from = "n.old::text";
    if (table.is_time_key() && lookback_seconds > 0)
        read_from = fmt::format("(n.old - pg_catalog.make_interval(secs => {}::int4))::{}::text",
                                next(std::to_string(lookback_seconds)), kt);

    std::string query =
        fmt::format("WITH s AS (SELECT max({key}) AS m FROM ONLY {rel} {where}), "
                    "n AS (SELECT {mark}::{kt} AS old, "
                    "GREATEST({mark}::{kt}, {candidate}) AS mark FROM s) "
                    "SELECT s.m::text, n.mark::text, {read_from}, GREATEST({lag}, 0) "
                    "FROM s, n",
                    fmt::arg("key", key), fmt::arg("rel", rel), fmt::arg("where", where),
                    fmt::arg("mark", mark_p), fmt::arg("kt", kt), fmt::arg("candidate", candidate),
                    fmt::arg("read_from", read_from), fmt::arg("lag", lag));
    auto res = src.exec(query, params, pg::Expect::one_row);
    Position p;
    p.max_key = res.optional(0, 0);
    p.new_mark = res.optional(0, 1);
    p.read_from = res.optional(0, 2);
    if (!res.is_null(0, 3))
        p.lag_seconds = std::stod(std::string(res.text(0, 3)));
    return p;
}

} // namespace pgincr::watermark
