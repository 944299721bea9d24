#include "commands/status.hpp"

#include "alerts/lag_alert.hpp"
#include "config.hpp"
#include "dest/progress.hpp"
#include "lock.hpp"
#include "modes/cdc_sync.hpp"
#include "source/catalog.hpp"
#include "source/lag.hpp"
#include "state.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "util/time.hpp"
#include "webhook.hpp"

#include <fmt/format.h>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

namespace pgincr::commands {

namespace {

// The table's lag alert as the last sync or watch cycle left it; null when the entry
// has no threshold.
nlohmann::ordered_json alert_json(const config::Settings &settings, const state::Store &store,
                                  const config::Table &cfg) {
    auto threshold = config::lag_alert_threshold(settings, cfg);
    if (!threshold)
        return nullptr;
    lag_alert::State st;
    try {
        st = lag_alert::load(store, cfg.destination).value_or(lag_alert::State{});
    } catch (const std::exception &e) {
        log::warn(cfg.destination, "{}", e.what());
    }
    auto t = [](const std::optional<lag_alert::Clock::time_point> &at) {
        return at ? nlohmann::ordered_json(timeutil::iso_utc(*at))
                  : nlohmann::ordered_json(nullptr);
    };
    nlohmann::ordered_json j;
    j["threshold_seconds"] = *threshold;
    j["active"] = st.active;
    j["since"] = st.active ? t(st.since) : nlohmann::ordered_json(nullptr);
    j["alerted_at"] = t(st.alerted_at);
    j["lag_seconds"] =
        st.lag_seconds ? nlohmann::ordered_json(*st.lag_seconds) : nlohmann::ordered_json(nullptr);
    j["causes"] = st.active ? st.causes : nlohmann::ordered_json::array();
    j["failed_runs"] = st.failed_runs;
    return j;
}

} // namespace

int status(const cli::Options &o) {
    auto settings = config::load_settings(o.env_file, config::process_environment());
    auto tables = config::load_tables(o.config_file);
    state::Store store(o.state_dir);

    std::unique_ptr<pg::Connection> src;
    try {
        src = std::make_unique<pg::Connection>(settings.source);
    } catch (const pg::PgError &e) {
        log::warn("", "live lag unavailable: {}", e.what());
    }

    // The destination's progress rows, which win over sync-state/ (dest/progress.hpp).
    std::unique_ptr<pg::Connection> dst;
    try {
        dst = std::make_unique<pg::Connection>(settings.dest);
    } catch (const pg::PgError &e) {
        log::warn("", "the destination's progress rows are unavailable: {}", e.what());
    }

    std::optional<SlotReport> slot;
    if (src && config::any_cdc(tables)) {
        try {
            slot = cdc_sync::slot_report(*src, settings.slot);
        } catch (const std::exception &e) {
            log::warn("", "replication slot \"{}\" unavailable: {}", settings.slot, e.what());
        }
    }

    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto &cfg : tables) {
        nlohmann::ordered_json row;
        row["name"] = cfg.name;
        row["destination"] = cfg.destination;
        row["mode"] = config::mode_name(cfg.mode);
        auto file = store.load(cfg.destination);
        std::optional<state::TableState> in_dest;
        if (dst) {
            try {
                in_dest = progress::load(*dst, settings.dest_schema, cfg.destination);
            } catch (const std::exception &e) {
                log::warn(cfg.destination, "progress row unavailable: {}", e.what());
            }
        }
        std::string disagreement;
        auto s = progress::reconcile(file, in_dest, &disagreement);
        auto mark_json = [](const std::optional<state::TableState> &t) {
            return t && t->watermark ? nlohmann::ordered_json(*t->watermark)
                                     : nlohmann::ordered_json(nullptr);
        };
        row["watermark"] = mark_json(s);
        row["watermark_in_state_file"] = mark_json(file);
        row["watermark_in_destination"] = mark_json(in_dest);
        row["progress_disagrees"] = !disagreement.empty();
        row["reset_requested"] = s ? s->reset_requested : false;
        row["deletes"] = config::deletes_name(cfg.deletes);
        row["conflict"] = config::conflict_name(cfg.conflict);
        row["deletes_checked_at"] = s && s->deletes_checked_at
                                        ? nlohmann::ordered_json(*s->deletes_checked_at)
                                        : nlohmann::ordered_json(nullptr);
        if (s && s->last_sync) {
            const auto &l = *s->last_sync;
            row["last_sync"] = {{"at", l.at},
                                {"mode", l.mode},
                                {"result", l.result},
                                {"rows_copied", l.rows_copied},
                                {"rows_merged", l.rows_merged},
                                {"rows_deleted", l.rows_deleted},
                                {"conflicts", l.conflicts},
                                {"duration_ms", l.duration_ms},
                                {"error", l.error.empty() ? nlohmann::ordered_json(nullptr)
                                                          : nlohmann::ordered_json(l.error)}};
        } else {
            row["last_sync"] = nullptr;
        }
        row["lag_seconds"] = nullptr;
        row["rows_at_or_after_mark"] = nullptr;
        if (s && src) {
            try {
                auto lag = lag::measure(*src, settings, cfg, *s);
                if (lag.seconds)
                    row["lag_seconds"] = *lag.seconds;
                if (lag.rows_waiting)
                    row["rows_at_or_after_mark"] = *lag.rows_waiting;
            } catch (const std::exception &e) {
                log::warn(cfg.destination, "live lag unavailable: {}", e.what());
            }
        }
        if (cfg.mode == config::Mode::cdc) {
            row["position"] =
                s && s->lsn ? nlohmann::ordered_json(*s->lsn) : nlohmann::ordered_json(nullptr);
            row["slot"] = slot ? webhook::slot_json(*slot) : nlohmann::ordered_json(nullptr);
            // The stream's lag is known as of the last sync; none when nothing is behind.
            if (slot && slot->behind_bytes && *slot->behind_bytes == 0)
                row["lag_seconds"] = 0.0;
            else if (s && s->last_sync && s->last_sync->lag_seconds)
                row["lag_seconds"] = *s->last_sync->lag_seconds;
        }
        row["lag_alert"] = alert_json(settings, store, cfg);
        out.push_back(row);
    }

    if (o.json) {
        std::cout << out.dump(2) << '\n';
        return exit_ok;
    }
    std::cout << fmt::format("{:<24} {:<20} {:<32} {:<21} {:<8} {:>10} {:>10} {:>9}\n", "table",
                             "mode", "watermark", "last sync", "result", "rows", "lag", "pending");
    for (const auto &row : out) {
        auto str = [](const nlohmann::ordered_json &v) {
            return v.is_null() ? std::string("-") : v.is_string() ? v.get<std::string>() : v.dump();
        };
        const auto &last = row["last_sync"];
        std::string name = row["destination"].get<std::string>();
        if (row["reset_requested"].get<bool>())
            name += " (reset)";
        std::cout << fmt::format(
            "{:<24} {:<20} {:<32} {:<21} {:<8} {:>10} {:>10} {:>9}\n", name,
            row["mode"].get<std::string>(),
            str(row.contains("position") ? row["position"] : row["watermark"]),
            last.is_null() ? "never" : last["at"].get<std::string>(),
            last.is_null() ? "-" : last["result"].get<std::string>(),
            last.is_null() ? "-" : std::to_string(last["rows_copied"].get<std::int64_t>()),
            row["lag_seconds"].is_null() ? "-"
                                         : fmt::format("{:.0f}s", row["lag_seconds"].get<double>()),
            str(row["rows_at_or_after_mark"]));
        if (row["progress_disagrees"].get<bool>())
            std::cout << "    note: sync-state/ has mark " << str(row["watermark_in_state_file"])
                      << ", the destination's progress row has "
                      << str(row["watermark_in_destination"])
                      << "; the next sync goes on from the destination's\n";
        if (!last.is_null() && last["conflicts"].get<std::int64_t>() > 0)
            std::cout << fmt::format("    conflicts: {} in the last sync (\"conflict\": \"{}\")\n",
                                     last["conflicts"].get<std::int64_t>(),
                                     row["conflict"].get<std::string>());
        if (!last.is_null() && !last["error"].is_null())
            std::cout << "    error: " << last["error"].get<std::string>() << '\n';
        if (const auto &a = row["lag_alert"]; !a.is_null() && a["active"].get<bool>())
            std::cout << fmt::format("    lag alert since {} (threshold {:g} s): {}\n",
                                     str(a["since"]), a["threshold_seconds"].get<double>(),
                                     lag_alert::describe_causes(a["causes"]));
    }
    if (slot) {
        auto mb = [](const std::optional<std::int64_t> &b) {
            return b ? fmt::format("{:.1f} MB", static_cast<double>(*b) / 1048576.0)
                     : std::string("?");
        };
        if (!slot->exists)
            std::cout << fmt::format("replication slot \"{}\": does not exist (the next sync "
                                     "creates it)\n",
                                     slot->name);
        else
            std::cout << fmt::format("replication slot \"{}\": wal_status {}, retains {} of WAL, "
                                     "{} behind, confirmed up to {}\n",
                                     slot->name, slot->wal_status.value_or("?"),
                                     mb(slot->retained_bytes), mb(slot->behind_bytes),
                                     slot->confirmed_lsn.value_or("?"));
    }
    return exit_ok;
}

int reset(const cli::Options &o) {
    auto tables = config::load_tables(o.config_file);
    // A running sync saves state at the end of each table and would undo the flag.
    lock::StateDirLock lock(o.state_dir);
    state::Store store(o.state_dir);
    for (const auto &name : o.tables) {
        const config::Table *cfg = nullptr;
        for (const auto &t : tables)
            if (t.destination == name || t.name == name)
                cfg = &t;
        if (!cfg)
            throw ConfigError(
                fmt::format("{}: no table \"{}\" in {}", "reset", name, o.config_file.string()));
        auto s = store.load(cfg->destination);
        if (!s) {
            std::cout << cfg->destination << ": no saved state; the next sync loads it whole\n";
            continue;
        }
        s->reset_requested = true;
        store.save(*s);
        std::cout << cfg->destination << ": the next sync reloads it whole\n";
    }
    return exit_ok;
}

} // namespace pgincr::commands
