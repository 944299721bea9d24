#include "commands/teardown.hpp"

#include "cdc/publication.hpp"
#include "cdc/source_setup.hpp"
#include "config.hpp"
#include "dest/progress.hpp"
#include "lock.hpp"
#include "source/catalog.hpp"
#include "state.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "util/text.hpp"

#include <fmt/format.h>
#include <iostream>

namespace pgincr::commands {

int teardown(const cli::Options &o) {
    auto settings = config::load_settings(o.env_file, config::process_environment());
    auto tables = config::load_tables(o.config_file);
    // No sync may stream from the slot while it goes.
    lock::RunLock lock(o.state_dir, settings.dest, settings.dest_schema);
    auto writable = settings.source;
    writable.read_only = false;
    pg::Connection src(writable);

    auto slot = cdc::slot_status(src, settings.slot);
    if (!slot.exists) {
        std::cout << fmt::format("replication slot \"{}\": none on the source\n", settings.slot);
    } else {
        if (slot.active)
            throw Error(fmt::format("replication slot \"{}\" is in use by another session; stop "
                                    "what streams from it (another pgincr with the same "
                                    "PGINCR_SLOT?) and run teardown again",
                                    settings.slot));
        src.exec("SELECT pg_catalog.pg_drop_replication_slot($1)", {settings.slot},
                 pg::Expect::rows);
        std::cout << fmt::format("replication slot \"{}\": dropped\n", settings.slot);
    }

    auto pub = cdc::read_publication(src, settings.publication);
    if (!pub.exists)
        std::cout << fmt::format("publication \"{}\": none on the source\n", settings.publication);
    else if (cdc::drop_publication_if_ours(src, settings.publication))
        std::cout << fmt::format("publication \"{}\": dropped\n", settings.publication);
    else
        std::cout << fmt::format("publication \"{}\": kept, pgincr did not create it\n",
                                 settings.publication);

    // Without their slot the cdc tables' positions mean nothing: a later sync loads
    // them again under a new one.
    std::vector<std::optional<std::string>> cdc;
    state::Store store(o.state_dir);
    for (const auto &t : tables) {
        if (t.mode != config::Mode::cdc)
            continue;
        cdc.push_back(t.destination);
        if (auto s = store.load(t.destination); s && s->lsn) {
            s->lsn.reset();
            store.save(*s);
        }
    }
    if (!cdc.empty()) {
        pg::Connection dst(settings.dest);
        if (catalog::relation_exists(dst, settings.dest_schema, progress::table_name))
            dst.exec(fmt::format("UPDATE {} SET lsn = NULL, updated_at = pg_catalog.now() WHERE "
                                 "destination = ANY ($1::text[])",
                                 dst.qualified(settings.dest_schema, progress::table_name)),
                     {text::array_literal(cdc)}, pg::Expect::command);
        std::cout << fmt::format("{} cdc table(s) kept in the destination; the next sync loads "
                                 "them again under a new slot\n",
                                 cdc.size());
    }
    return exit_ok;
}

} // namespace pgincr::commands
