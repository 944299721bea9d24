#include "commands/verify.hpp"

#include "config.hpp"
#include "lock.hpp"
#include "modes/table_sync.hpp"
#include "modes/verify.hpp"
#include "state.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "util/signals.hpp"

#include <fmt/format.h>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

namespace pgincr::commands {

namespace {

using Json = nlohmann::ordered_json;

Json kind_json(const verify::Kind &k) {
    return {{"count", k.count}, {"sample_keys", k.samples}};
}

Json report_json(const verify::Report &r) {
    Json j;
    j["name"] = r.name;
    j["destination"] = r.destination;
    j["status"] = !r.compared ? "error" : r.equal() ? "equal" : "different";
    j["error"] = r.error.empty() ? Json(nullptr) : Json(r.error);
    j["source_rows"] = r.source_rows;
    j["dest_rows"] = r.dest_rows;
    j["missing_in_dest"] = kind_json(r.missing);
    j["only_in_dest"] = kind_json(r.extra);
    j["changed"] = kind_json(r.changed);
    j["in_flight"] = kind_json(r.in_flight);
    j["expected_in_dest"] = kind_json(r.expected);
    j["expected_in_dest_as"] = r.expected_as.empty() ? Json(nullptr) : Json(r.expected_as);
    j["null_key_rows"] = {{"source", r.null_key_rows_source},
                          {"dest", r.null_key_rows_dest},
                          {"differ", r.null_keys_differ}};
    j["rows_repaired"] = r.repaired;
    j["duration_ms"] = r.duration_ms;
    return j;
}

void print_table(const std::vector<verify::Report> &reports) {
    std::cout << fmt::format("{:<24} {:<9} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8}\n",
                             "table", "result", "source", "dest", "missing", "extra", "changed",
                             "in flight", "expected", "time");
    for (const auto &r : reports) {
        std::string result = !r.compared ? "error" : r.equal() ? "equal" : "DIFFERENT";
        std::cout << fmt::format(
            "{:<24} {:<9} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7.1f}s\n", r.destination,
            result, r.source_rows, r.dest_rows, r.missing.count, r.extra.count, r.changed.count,
            r.in_flight.count, r.expected.count, static_cast<double>(r.duration_ms) / 1000.0);
        if (!r.compared)
            std::cout << "    error: " << r.error << '\n';
        auto keys = [](const char *what, const verify::Kind &k) {
            if (k.count == 0)
                return;
            std::string list;
            for (const auto &s : k.samples)
                list += (list.empty() ? "" : ", ") + s;
            if (k.count > static_cast<std::int64_t>(k.samples.size()))
                list += fmt::format(" ... ({} in all)", k.count);
            std::cout << "    " << what << ": " << list << '\n';
        };
        keys("missing in the destination", r.missing);
        keys("only in the destination", r.extra);
        keys("changed", r.changed);
        keys("in flight (at or after the mark; the next sync brings them)", r.in_flight);
        if (!r.expected_as.empty())
            keys(r.expected_as == "earlier versions"
                     ? "kept in the destination as earlier versions"
                     : "kept in the destination, deleted in the source (\"deletes\")",
                 r.expected);
        if (r.null_keys_differ)
            std::cout << fmt::format("    rows with a NULL in a unique column differ ({} in the "
                                     "source, {} in the destination); they cannot be told apart "
                                     "by key: `pgincr reset {}` reloads the table\n",
                                     r.null_key_rows_source, r.null_key_rows_dest, r.destination);
        if (r.repaired > 0)
            std::cout << fmt::format("    repaired: {} row(s) copied again or removed, then "
                                     "compared again (the numbers above)\n",
                                     r.repaired);
    }
}

} // namespace

int verify(const cli::Options &o) {
    auto settings = config::load_settings(o.env_file, config::process_environment());
    auto tables = config::select_tables(config::load_tables(o.config_file), o.tables,
                                        o.config_file.string(), "verify ");
    signals::install();
    // Under the run lock, no sync commits while the tables are compared: a difference
    // is never one that a sync is about to commit (and a repair never races one).
    lock::RunLock lock(o.state_dir, settings.dest, settings.dest_schema);
    state::Store store(o.state_dir);
    pg::Connection src(settings.source);
    pg::Connection dst(settings.dest);

    std::vector<verify::Report> reports;
    for (const auto &cfg : tables) {
        if (signals::interrupted())
            break;
        lock.ensure_held();
        auto saved = table_sync::load_saved(dst, settings, cfg, store);
        auto r = verify::run(src, dst, settings, cfg, saved, o.repair, [&] { lock.ensure_held(); });
        if (!r.compared)
            log::error(r.destination, "could not be compared: {}", r.error);
        else
            log::info(r.destination,
                      "{}: {} source rows, {} destination rows; {} missing, {} only in the "
                      "destination, {} changed, {} in flight, {} expected; {:.2f}s",
                      r.equal() ? "equal" : "DIFFERENT", r.source_rows, r.dest_rows,
                      r.missing.count, r.extra.count, r.changed.count, r.in_flight.count,
                      r.expected.count, static_cast<double>(r.duration_ms) / 1000.0);
        reports.push_back(std::move(r));
    }
    if (signals::interrupted())
        throw InterruptedError(fmt::format("interrupted by signal {}", signals::last_signal()));

    if (o.json) {
        Json out = Json::array();
        for (const auto &r : reports)
            out.push_back(report_json(r));
        std::cout << out.dump(2) << '\n';
    } else {
        print_table(reports);
    }
    bool all_equal = std::all_of(reports.begin(), reports.end(),
                                 [](const verify::Report &r) { return r.equal(); });
    return all_equal ? exit_ok : exit_table_failed;
}

} // namespace pgincr::commands
