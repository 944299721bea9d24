#include "cdc/source_setup.hpp"

#include "source/catalog.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pgincr::sql {
extern const std::string_view cdc_replica_identity;
extern const std::string_view cdc_slot_status;
} // namespace pgincr::sql

namespace pgincr::cdc {

std::vector<std::string> source_problems(pg::Connection &src, const std::string &role) {
    std::vector<std::string> out;
    auto res = src.exec("SELECT pg_catalog.current_setting('wal_level'), "
                        "(SELECT r.rolreplication OR r.rolsuper FROM pg_catalog.pg_roles r WHERE "
                        "r.rolname = current_user)",
                        pg::Expect::one_row);
    if (res.text(0, 0) != "logical")
        out.push_back(fmt::format("the source has wal_level = {}; the cdc mode needs logical: "
                                  "ALTER SYSTEM SET wal_level = logical; then restart the server",
                                  res.text(0, 0)));
    if (!res.boolean(0, 1))
        out.push_back(fmt::format("role \"{}\" may not replicate; run: ALTER ROLE {} REPLICATION;",
                                  role, src.quote_ident(role)));
    return out;
}

std::string replica_identity_problem(pg::Connection &src, const std::string &schema,
                                     const std::string &table,
                                     const std::vector<std::string> &unique_cols) {
    std::string rel = src.qualified(schema, table);
    auto oid = src.exec("SELECT $1::pg_catalog.regclass::pg_catalog.oid", {rel}, pg::Expect::value);
    auto res =
        src.exec(sql::cdc_replica_identity, {std::string(oid.text(0, 0))}, pg::Expect::one_row);
    std::string ident(res.text(0, 0));
    if (ident == "f")
        return "";
    auto cols = catalog::parse_text_array(res.text(0, 1));
    if ((ident == "d" || ident == "i") && cols == unique_cols)
        return "";
    std::vector<std::string> quoted;
    for (const auto &u : unique_cols)
        quoted.push_back(src.quote_ident(u));
    std::string what = ident == "n" ? "REPLICA IDENTITY NOTHING"
                       : cols.empty()
                           ? "no primary key for its default replica identity"
                           : fmt::format("a replica identity on ({})", fmt::join(cols, ", "));
    return fmt::format(
        "{} has {}, so updates and deletes would not carry its unique columns ({}); create a "
        "unique index on them and run: ALTER TABLE {} REPLICA IDENTITY USING INDEX <that "
        "index>; (or REPLICA IDENTITY FULL, which logs whole old rows)",
        rel, what, fmt::join(quoted, ", "), rel);
}

SlotStatus slot_status(pg::Connection &src, const std::string &slot) {
    SlotStatus s;
    auto res = src.exec(sql::cdc_slot_status, {slot}, pg::Expect::rows);
    if (res.rows() == 0)
        return s;
    s.exists = true;
    s.plugin = std::string(res.text(0, 0));
    s.active = res.boolean(0, 1);
    s.confirmed_flush = res.optional(0, 2);
    s.wal_status = res.optional(0, 3);
    if (!res.is_null(0, 4))
        s.retained_bytes = res.integer(0, 4);
    if (!res.is_null(0, 5))
        s.behind_bytes = res.integer(0, 5);
    return s;
}

std::optional<std::string> unbounded_slot_warning(pg::Connection &src) {
    auto v =
        src.exec("SELECT pg_catalog.current_setting('max_slot_wal_keep_size')", pg::Expect::value);
    if (v.text(0, 0) != "-1")
        return std::nullopt;
    return std::string("max_slot_wal_keep_size is unlimited on the source: a slot whose "
                       "consumer stops keeps WAL until the disk is full. Set a bound, for "
                       "example ALTER SYSTEM SET max_slot_wal_keep_size = '50GB'; SELECT "
                       "pg_reload_conf(); a slot that passes it is lost, and pgincr says so");
}

} // namespace pgincr::cdc
