#include "dest/progress.hpp"

#include <fmt/format.h>

namespace pgincr::sql {
extern const std::string_view progress_table;
}

namespace pgincr::progress {

namespace {

struct CatalogShape {
    bool exists = false;
    bool has_deletes_checked_at = false; // added after the catalog's first release
};

CatalogShape catalog_shape(pg::Connection &dst, const std::string &schema) {
    auto res = dst.exec("SELECT c IS NOT NULL, EXISTS (SELECT FROM pg_catalog.pg_attribute a "
                        "WHERE a.attrelid = c AND a.attname = 'deletes_checked_at' AND NOT "
                        "a.attisdropped) FROM pg_catalog.to_regclass($1) AS c",
                        {dst.qualified(schema, table_name)}, pg::Expect::one_row);
    return {res.boolean(0, 0), res.boolean(0, 1)};
}

} // namespace

std::optional<state::TableState> load(pg::Connection &dst, const std::string &schema,
                                      const std::string &destination) {
    auto shape = catalog_shape(dst, schema);
    if (!shape.exists)
        return std::nullopt;
    auto res = dst.exec(
        fmt::format("SELECT source_table, replication_key, key_type, watermark, "
                    "fingerprint, dest_signature, options, {}, lsn::text FROM {} "
                    "WHERE destination = $1",
                    shape.has_deletes_checked_at ? "deletes_checked_at::text" : "NULL::text",
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
    s.deletes_checked_at = res.optional(0, 7);
    s.lsn = res.optional(0, 8);
    return s;
}

void save(pg::Connection &dst, const std::string &schema, const state::TableState &s) {
    std::string qualified = dst.qualified(schema, table_name);
    auto shape = catalog_shape(dst, schema);
    if (!shape.exists) {
        std::string ddl(sql::progress_table);
        for (auto at = ddl.find("%TABLE%"); at != std::string::npos; at = ddl.find("%TABLE%", at))
            ddl.replace(at, 7, qualified);
        dst.exec(ddl);
    } else if (!shape.has_deletes_checked_at) {
        dst.exec(fmt::format("ALTER TABLE {} ADD COLUMN IF NOT EXISTS deletes_checked_at "
                             "timestamptz",
                             qualified));
    }
    dst.exec(fmt::format("INSERT INTO {} AS p (destination, source_table, replication_key, "
                         "key_type, watermark, fingerprint, dest_signature, options, "
                         "deletes_checked_at, lsn) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::timestamptz, $10::pg_lsn) "
                         "ON CONFLICT (destination) DO UPDATE SET "
                         "source_table = EXCLUDED.source_table, "
                         "replication_key = EXCLUDED.replication_key, "
                         "key_type = EXCLUDED.key_type, watermark = EXCLUDED.watermark, "
                         "fingerprint = EXCLUDED.fingerprint, "
                         "dest_signature = EXCLUDED.dest_signature, options = EXCLUDED.options, "
                         "deletes_checked_at = EXCLUDED.deletes_checked_at, lsn = EXCLUDED.lsn, "
                         "updated_at = pg_catalog.now()",
                         qualified),
             {s.destination, s.source_table, s.replication_key, s.key_type, s.watermark,
              s.fingerprint, s.dest_signature, s.options, s.deletes_checked_at, s.lsn},
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
        if (!s.deletes_checked_at)
            s.deletes_checked_at = file->deletes_checked_at;
        s.reset_requested = file->reset_requested;
        bool differ = file->watermark != row->watermark || file->fingerprint != row->fingerprint ||
                      file->options != row->options ||
                      file->replication_key != row->replication_key ||
                      file->dest_signature != row->dest_signature || file->lsn != row->lsn;
        // A cdc entry's progress is its stream position; the others' is their mark.
        auto shown = [](const state::TableState &t) {
            return t.lsn ? "position " + *t.lsn : "mark " + t.watermark.value_or("(none)");
        };
        if (differ && disagreement)
            *disagreement =
                fmt::format("sync-state/ has {}, the destination's progress row has {}: going on "
                            "from the destination's row, which committed with the rows",
                            shown(*file), shown(*row));
    }
    return s;
}

} // namespace pgincr::progress
