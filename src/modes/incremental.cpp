#include "incremental.hpp"

#include "filter.hpp"
#include "load.hpp"
#include "merge.hpp"
#include "pg/copy.hpp"
#include "util/fault.hpp"
#include "util/progress.hpp"

#include <fmt/format.h>

namespace pgincr::incremental {

Result run(pg::Connection &src, pg::Connection &dst, const config::Settings &settings,
           const config::Table &cfg, const catalog::SourceTable &table,
           const std::optional<std::string> &mark, const watermark::Horizon &horizon) {
    Result result;
    std::string source_rel = src.qualified(table.schema, table.name);
    auto pos =
        watermark::read_position(src, table, mark, horizon, cfg.lookback_seconds, cfg.filter);
    result.watermark = pos.new_mark;
    result.lag_seconds = pos.lag_seconds;

    // COPY takes no parameters: the bound is stored with set_config() through a bound
    // parameter and read back, typed as the key itself, by an InitPlan evaluated once.
    std::vector<std::string> preds;
    if (pos.read_from) {
        src.exec("SELECT pg_catalog.set_config('pgincr.mark', $1, true)", {pos.read_from},
                 pg::Expect::value);
        preds.push_back(fmt::format("{} >= (SELECT pg_catalog.current_setting('pgincr.mark')::{})",
                                    src.quote_ident(table.key->name), table.key->source_type));
    }
    if (cfg.filter)
        preds.push_back("(" + filter::for_copy(src, source_rel, *cfg.filter) + ")");
    std::string where_sql;
    for (const auto &p : preds)
        where_sql += (where_sql.empty() ? " WHERE " : " AND ") + p;

    std::string schema = settings.dest_schema;
    std::string target = dst.qualified(schema, cfg.destination);
    std::string staging = dst.qualified(schema, load::staging_name(cfg.destination));

    pg::Transaction tx(dst);
    dst.exec(fmt::format("TRUNCATE {}", staging));
    Progress progress(cfg.destination, "copying changes", 0);
    result.rows_copied = load::copy_rows(src, dst, table, where_sql, staging, progress);
    progress.finish();

    fault::point("incremental-after-copy");
    if (result.rows_copied > 0) {
        merge::Spec spec;
        spec.target = target;
        spec.staging = staging;
        for (const auto *c : table.copied_columns())
            spec.columns.push_back(dst.quote_ident(c->name));
        for (const auto &u : table.unique_cols)
            spec.unique.push_back(dst.quote_ident(u));
        spec.key = dst.quote_ident(table.key->name);
        spec.append = cfg.mode == config::Mode::incremental_append;
        // The staging table was just filled: give the planner its size.
        dst.exec(fmt::format("ANALYZE {}", staging));
        // The DISTINCT ON sort of a typical delta spills to disk under the default
        // 4 MB (measured in BENCHMARKS.md); LOCAL ends with this transaction.
        dst.exec("SET LOCAL work_mem = '64MB'");
        result.rows_merged = dst.exec(merge::merge_sql(spec)).affected_rows();
        dst.exec(fmt::format("TRUNCATE {}", staging));
    }
    fault::point("incremental-before-commit");
    tx.commit();
    return result;
}

} // namespace pgincr::incremental
