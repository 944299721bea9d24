#include "watermark.hpp"

#include "filter.hpp"

#include <fmt/format.h>

namespace pgincr::sql {
extern const std::string_view horizon;
}

namespace pgincr::watermark {

Horizon read_horizon(pg::Connection &src, int fallback_lookback_seconds) {
    auto res =
        src.exec(sql::horizon, {std::to_string(fallback_lookback_seconds)}, pg::Expect::one_row);
    Horizon h;
    h.at = res.text(0, 0);
    h.sees_all = res.boolean(0, 1);
    h.open_transactions = res.integer(0, 2);
    h.oldest_start = res.optional(0, 3);
    return h;
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
