#include "dest/progress.hpp"

#include <fmt/format.h>

namespace pgincr::sql {
extern const std::string_view progress_table;
}

namespace pgincr::progress {

namespace {

bool catalog_exists(pg::Connection &dst, const std::string &schema) {
    return !dst.exec("SELECT pg_catalog.to_regclass($1)", {dst.qualified(schema, table_name)},
                     pg::Expect::value)
                .is_null(0, 0);
}

} // namespace

std::optional<state::TableState> load(pg::Connection &dst, const std::string &schema,
                                      const std::string &destination) {
    if (!catalog_exists(dst, schema))
        return std::nullopt;
    auto res = dst.exec(fmt::format("SELECT source_table, replication_key, key_type, watermark, "
                                    "fingerprint, dest_signature, options FROM {} "
                                    "WHERE destination = $1",
                                    dst.qualified(schema, table_name)),
                        {destination}, pg::Expect::rows);
    if (res.rows() == 0)
        return std::nullopt;
    state::TableState s;
    s.destination = destination;
    s.source_table = res.text(0, 0);
    s.replication_key = res.text(0, 1);
    s.key_type = res.text(0, 2);
    s.watermark = res.optional(0, 3);
    s.fingerprint = res.text(0, 4);
    s.dest_signature = res.text(0, 5);
    s.options = res.text(0, 6);
    return s;
}

void save(pg::Connection &dst, const std::string &schema, const state::TableState &s) {
    std::string qualified = dst.qualified(schema, table_name);
    if (!catalog_exists(dst, schema)) {
        std::string ddl(sql::progress_table);
        for (auto at = ddl.find("%TABLE%"); at != std::string::npos; at = ddl.find("%TABLE%", at))
            ddl.replace(at, 7, qualified);
        dst.exec(ddl);
    }
    dst.exec(fmt::format("INSERT INTO {} AS p (destination, source_table, replication_key, "
                         "key_type, watermark, fingerprint, dest_signature, options) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                         "ON CONFLICT (destination) DO UPDATE SET "
                         "source_table = EXCLUDED.source_table, "
                         "replication_key = EXCLUDED.replication_key, "
                         "key_type = EXCLUDED.key_type, watermark = EXCLUDED.watermark, "
                         "fingerprint = EXCLUDED.fingerprint, "
                         "dest_signature = EXCLUDED.dest_signature, options = EXCLUDED.options, "
                         "updated_at = pg_catalog.now()",
                         qualified),
             {s.destination, s.source_table, s.replication_key, s.key_type, s.watermark,
              s.fingerprint, s.dest_signature, s.options},
             pg::Expect::command);
}

std::optional<state::TableState> reconcile(const std::optional<state::TableState> &file,
                                           const std::optional<state::TableState> &row,
                                           std::string *disagreement) {
    if (!row)
        return file;
    state::TableState s = *row;
    if (file) {
        s.last_sync = file->last_sync;
        s.reset_requested = file->reset_requested;
        bool differ = file->watermark != row->watermark || file->fingerprint != row->fingerprint ||
                      file->options != row->options ||
                      file->replication_key != row->replication_key ||
                      file->dest_signature != row->dest_signature;
        if (differ && disagreement)
            *disagreement = fmt::format(
                "sync-state/ has mark {}, the destination's progress row has mark {}: going on "
                "from the destination's row, which committed with the rows",
                file->watermark.value_or("(none)"), row->watermark.value_or("(none)"));
    }
    return s;
}

} // namespace pgincr::progress
