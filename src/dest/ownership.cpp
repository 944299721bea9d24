#include "dest/ownership.hpp"

#include "dest/ddl.hpp"
#include "source/catalog.hpp"

#include <fmt/format.h>

namespace pgincr::sql {
extern const std::string_view ownership_registry;
}

namespace pgincr::ownership {

bool registered(pg::Connection &dst, const std::string &schema, const std::string &destination) {
    if (!catalog::relation_exists(dst, schema, registry_table))
        return false;
    auto res = dst.exec(fmt::format("SELECT EXISTS (SELECT 1 FROM {} WHERE destination = $1)",
                                    dst.qualified(schema, registry_table)),
                        {destination}, pg::Expect::value);
    return res.boolean(0, 0);
}

void record(pg::Connection &dst, const std::string &schema, const config::Table &cfg) {
    std::string registry = dst.qualified(schema, registry_table);
    if (!catalog::relation_exists(dst, schema, registry_table)) {
        std::string ddl(sql::ownership_registry);
        for (auto at = ddl.find("%REGISTRY%"); at != std::string::npos;
             at = ddl.find("%REGISTRY%", at))
            ddl.replace(at, 10, registry);
        dst.exec(ddl);
    }
    dst.exec(
        fmt::format("INSERT INTO {} (destination, source_table) VALUES ($1, $2) "
                    "ON CONFLICT (destination) DO UPDATE SET source_table = EXCLUDED.source_table",
                    registry),
        {cfg.destination, cfg.name}, pg::Expect::command);
}

std::optional<std::string> conflict(pg::Connection &dst, const std::string &schema,
                                    const config::Table &cfg, const Claim &claim) {
    if (claim.has_state || claim.legacy || claim.replace)
        return std::nullopt;
    if (registered(dst, schema, cfg.destination))
        return std::nullopt;
    for (const auto &name : {cfg.destination, ddl::staging_name(cfg.destination)}) {
        if (!catalog::relation_exists(dst, schema, name))
            continue;
        return fmt::format(
            "destination \"{}\".\"{}\" already exists and pgincr does not manage it (it is not "
            "in \"{}\".{} and sync-state/ has no state for \"{}\"); pgincr never replaces what "
            "it did not create. Rename or drop it, point DEST_SCHEMA or \"destination\" "
            "elsewhere, or let pgincr replace it: pgincr sync --replace {}",
            schema, name, schema, registry_table, cfg.destination, cfg.destination);
    }
    return std::nullopt;
}

} // namespace pgincr::ownership
