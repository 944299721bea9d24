#include "dest/ownership.hpp"

#include "dest/ddl.hpp"
#include "dest/progress.hpp"
#include "source/catalog.hpp"

#include <fmt/format.h>

namespace pgincr::ownership {

std::optional<std::string> conflict(pg::Connection &dst, const std::string &schema,
                                    const config::Table &cfg, const Claim &claim) {
    if (claim.has_state || claim.legacy || claim.replace)
        return std::nullopt;
    if (progress::load(dst, schema, cfg.destination))
        return std::nullopt;
    for (const auto &name : {cfg.destination, ddl::staging_name(cfg.destination)}) {
        if (!catalog::relation_exists(dst, schema, name))
            continue;
        return fmt::format(
            "destination \"{}\".\"{}\" already exists and pgincr does not manage it (it is not "
            "in \"{}\".{} and sync-state/ has no state for \"{}\"); pgincr never replaces what "
            "it did not create. Rename or drop it, point DEST_SCHEMA or \"destination\" "
            "elsewhere, or let pgincr replace it: pgincr sync --replace {}",
            schema, name, schema, progress::table_name, cfg.destination, cfg.destination);
    }
    return std::nullopt;
}

} // namespace pgincr::ownership
