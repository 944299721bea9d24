#include "source/lag.hpp"

#include "source/filter.hpp"

#include <fmt/format.h>
#include <string>

namespace pgincr::lag {

Lag measure(pg::Connection &src, const config::Settings &settings, const config::Table &cfg,
            const state::TableState &saved, bool count_rows) {
    Lag lag;
    if (cfg.mode == config::Mode::cdc || !saved.watermark || cfg.replication_key.empty() ||
        saved.key_type.empty())
        return lag;
    // The filter's own $1..$n come first, the mark after them.
    pg::Params params = cfg.filter ? filter::params(*cfg.filter) : pg::Params{};
    params.push_back(*saved.watermark);
    std::string mark = fmt::format("${}::{}", params.size(), saved.key_type);
    std::string key = src.quote_ident(cfg.replication_key);
    const std::string &kt = saved.key_type;
    bool time_key = kt == "date" || kt.rfind("timestamp", 0) == 0;
    // GREATEST ignores NULL: with no row at or after the mark, nothing is behind.
    std::string diff = "NULL::float8";
    if (kt == "date")
        diff = fmt::format("GREATEST(((max({}) - {}) * 86400)::float8, 0)", key, mark);
    else if (time_key)
        diff = fmt::format("GREATEST(pg_catalog.date_part('epoch', max({}) - {})::float8, 0)", key,
                           mark);
    std::string where = fmt::format("{} >= {}", key, mark);
    if (cfg.filter)
        where += " AND (" + cfg.filter->where + ")";
    auto res = src.exec(fmt::format("SELECT {}, {} FROM ONLY {} WHERE {}", diff,
                                    count_rows ? "count(*)" : "NULL::int8",
                                    src.qualified(settings.source_schema, cfg.name), where),
                        params, pg::Expect::one_row);
    if (time_key && !res.is_null(0, 0))
        lag.seconds = std::stod(std::string(res.text(0, 0)));
    if (count_rows)
        lag.rows_waiting = res.integer(0, 1);
    return lag;
}

} // namespace pgincr::lag
