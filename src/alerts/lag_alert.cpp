#include "alerts/lag_alert.hpp"

#include "pgincr/version.hpp"
#include "source/lag.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "util/time.hpp"
#include "webhook.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace pgincr::lag_alert {

using Json = nlohmann::ordered_json;

namespace {

constexpr const char *file_suffix = "lag-alert";

double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

Json time_json(const std::optional<Clock::time_point> &t) {
    return t ? Json(timeutil::iso_utc(*t, true)) : Json(nullptr);
}

std::optional<Clock::time_point> time_from(const Json &j, const char *key) {
    if (!j.contains(key) || !j[key].is_string())
        return std::nullopt;
    return timeutil::parse_iso_utc(j[key].get<std::string>());
}

std::string seconds_text(double s) {
    return fmt::format("{:.0f} s", s);
}

} // namespace

Decision decide(const State &before, std::optional<double> lag, double threshold,
                double repeat_seconds, Clock::time_point now) {
    Decision d;
    d.next = before;
    if (!lag)
        return d;
    if (*lag >= threshold) {
        if (!before.active) {
            d.event = Event::alert;
            d.next.active = true;
            d.next.since = now;
            d.next.alerted_at = now;
        } else if (!before.alerted_at ||
                   seconds_between(*before.alerted_at, now) >= repeat_seconds) {
            d.event = Event::alert;
            d.repeat = true;
            d.next.alerted_at = now;
        }
    } else if (before.active) {
        d.event = Event::recovered;
        d.next.active = false;
    }
    if (d.event != Event::none)
        d.next.lag_seconds = lag;
    return d;
}

void count_run(State &state, bool ok, Clock::time_point now) {
    if (ok) {
        state.failed_runs = 0;
        state.failing_since.reset();
        return;
    }
    if (state.failed_runs++ == 0)
        state.failing_since = now;
}

std::optional<double> cdc_lag(const TableResult &result, const State &state,
                              Clock::time_point now) {
    if (result.ok)
        return result.lag_seconds;
    if (state.failing_since)
        return std::max(0.0, seconds_between(*state.failing_since, now));
    return std::nullopt;
}

Json causes(const State &state, const Seen &seen, double threshold) {
    Json out = Json::array();
    if (seen.horizon) {
        const auto &h = *seen.horizon;
        if (h.oldest && h.oldest->age_seconds >= threshold) {
            Json c;
            c["kind"] = "open_transaction";
            c["pid"] = h.oldest->pid ? Json(*h.oldest->pid) : Json(nullptr);
            c["application_name"] = h.oldest->application_name;
            c["state"] = h.oldest->state;
            c["age_seconds"] = h.oldest->age_seconds;
            c["on_primary"] = h.from_primary;
            out.push_back(c);
        }
        if (h.windowed() && seen.fallback_lookback_seconds >= threshold) {
            Json c;
            c["kind"] = "fallback_window";
            c["seconds"] = seen.fallback_lookback_seconds;
            c["reason"] = !h.sees_all ? "the source role cannot see other roles' transactions "
                                        "(no pg_read_all_stats)"
                                      : "the source is a hot standby without SOURCE_PRIMARY_HOST";
            out.push_back(c);
        }
    }
    if (seen.slot && seen.slot->exists && seen.slot->behind_bytes && *seen.slot->behind_bytes > 0) {
        Json c;
        c["kind"] = "slot";
        c["slot"] = seen.slot->name;
        c["wal_status"] = seen.slot->wal_status ? Json(*seen.slot->wal_status) : Json(nullptr);
        c["retained_bytes"] =
            seen.slot->retained_bytes ? Json(*seen.slot->retained_bytes) : Json(nullptr);
        c["behind_bytes"] = *seen.slot->behind_bytes;
        c["behind_seconds"] =
            seen.slot->behind_seconds ? Json(*seen.slot->behind_seconds) : Json(nullptr);
        out.push_back(c);
    }
    if (state.failed_runs > 0) {
        Json c;
        c["kind"] = "failures";
        c["failed_runs"] = state.failed_runs;
        c["failing_since"] = time_json(state.failing_since);
        c["last_error"] = seen.last_error.empty() ? Json(nullptr) : Json(seen.last_error);
        out.push_back(c);
    }
    return out;
}

std::string describe_causes(const Json &causes) {
    std::string out;
    for (const auto &c : causes) {
        std::string kind = c.value("kind", "");
        std::string one;
        if (kind == "open_transaction")
            one = fmt::format("an open source transaction holds the mark back (pid {}, "
                              "application_name '{}', {}, open {})",
                              c["pid"].is_null() ? "-" : c["pid"].dump(),
                              c.value("application_name", ""), c.value("state", ""),
                              seconds_text(c.value("age_seconds", 0.0)));
        else if (kind == "fallback_window")
            one = fmt::format("the late-commit guard holds the mark {} back: {}",
                              seconds_text(c.value("seconds", 0.0)), c.value("reason", ""));
        else if (kind == "slot")
            one = fmt::format("replication slot \"{}\" retains {:.1f} MB of WAL, {:.1f} MB not "
                              "applied",
                              c.value("slot", ""),
                              c["retained_bytes"].is_number()
                                  ? c["retained_bytes"].get<double>() / 1048576.0
                                  : 0.0,
                              c.value("behind_bytes", 0.0) / 1048576.0);
        else if (kind == "failures")
            one = fmt::format(
                "the table failed {} run{} in a row{}", c.value("failed_runs", 0),
                c.value("failed_runs", 0) == 1 ? "" : "s",
                c["last_error"].is_string() ? ": " + c["last_error"].get<std::string>() : "");
        else
            continue;
        out += (out.empty() ? "" : "; ") + one;
    }
    return out.empty() ? "no cause pgincr can see (the source may be written faster than the "
                         "syncs copy)"
                       : out;
}

std::string to_json(const State &s) {
    Json j;
    j["active"] = s.active;
    j["since"] = time_json(s.since);
    j["alerted_at"] = time_json(s.alerted_at);
    j["lag_seconds"] = s.lag_seconds ? Json(*s.lag_seconds) : Json(nullptr);
    j["rows_waiting"] = s.rows_waiting ? Json(*s.rows_waiting) : Json(nullptr);
    j["causes"] = s.causes;
    j["failed_runs"] = s.failed_runs;
    j["failing_since"] = time_json(s.failing_since);
    return j.dump(2) + "\n";
}

State from_json(const std::string &text, const std::string &origin) {
    try {
        auto j = Json::parse(text);
        State s;
        s.active = j.value("active", false);
        s.since = time_from(j, "since");
        s.alerted_at = time_from(j, "alerted_at");
        if (j.contains("lag_seconds") && j["lag_seconds"].is_number())
            s.lag_seconds = j["lag_seconds"].get<double>();
        if (j.contains("rows_waiting") && j["rows_waiting"].is_number_integer())
            s.rows_waiting = j["rows_waiting"].get<std::int64_t>();
        if (j.contains("causes") && j["causes"].is_array())
            s.causes = j["causes"];
        s.failed_runs = j.value("failed_runs", 0);
        s.failing_since = time_from(j, "failing_since");
        return s;
    } catch (const nlohmann::json::exception &e) {
        throw ConfigError(fmt::format("{}: unreadable lag alert state ({}); delete the file (the "
                                      "next alert is then posted again)",
                                      origin, e.what()));
    }
}

std::optional<State> load(const state::Store &store, const std::string &destination) {
    auto path = store.sibling_path(destination, file_suffix);
    auto text = state::read_file(path);
    if (!text)
        return std::nullopt;
    return from_json(*text, path.string());
}

void save(const state::Store &store, const std::string &destination, const State &state) {
    std::filesystem::create_directories(store.dir());
    state::write_file_atomically(store.sibling_path(destination, file_suffix), to_json(state));
}

namespace {

struct Checker {
    const config::Settings &settings;
    const state::Store &store;
    pg::Connection *src;
    pg::Connection *primary;
    std::optional<watermark::Horizon> horizon; // read once, when a time-keyed table alerts
    bool horizon_read = false;

    const std::optional<watermark::Horizon> &read_horizon() {
        if (!horizon_read && src) {
            horizon_read = true;
            try {
                horizon =
                    watermark::read_horizon(*src, primary, settings.fallback_lookback_seconds);
            } catch (const std::exception &e) {
                log::warn("", "lag alert: cannot read the source's open transactions: {}",
                          e.what());
            }
        }
        return horizon;
    }

    void table(const config::Table &cfg, const TableResult &r, double threshold,
               const std::optional<SlotReport> &slot) {
        auto now = Clock::now();
        const std::string &tag = cfg.destination;
        State before;
        try {
            before = load(store, cfg.destination).value_or(State{});
        } catch (const std::exception &e) {
            log::warn(tag, "{}", e.what());
        }
        State counted = before;
        count_run(counted, r.ok, now);

        std::optional<double> lag;
        std::optional<std::int64_t> rows_waiting;
        std::optional<state::TableState> saved;
        bool cdc = cfg.mode == config::Mode::cdc;
        if (cdc) {
            lag = cdc_lag(r, counted, now);
        } else if (src) {
            try {
                saved = store.load(cfg.destination);
                if (saved)
                    lag = lag::measure(*src, settings, cfg, *saved, false).seconds;
            } catch (const std::exception &e) {
                // A table that failed has said why already.
                if (r.ok)
                    log::warn(tag, "lag alert: cannot measure the lag: {}", e.what());
                else
                    log::debug(tag, "lag alert: cannot measure the lag: {}", e.what());
            }
        }

        auto d = decide(counted, lag, threshold, settings.lag_alert_repeat_seconds, now);
        // Counted only for the post: every cycle would pay a scan of what waits.
        if (d.event != Event::none && saved && src) {
            try {
                rows_waiting = lag::measure(*src, settings, cfg, *saved).rows_waiting;
            } catch (const std::exception &e) {
                log::warn(tag, "lag alert: cannot count the rows waiting: {}", e.what());
            }
        }
        if (d.event != Event::none)
            d.next.rows_waiting = rows_waiting;
        if (d.event == Event::alert) {
            Seen seen;
            if (!cdc)
                seen.horizon = read_horizon();
            else
                seen.slot = slot;
            seen.fallback_lookback_seconds = settings.fallback_lookback_seconds;
            seen.last_error = r.ok ? "" : r.error;
            d.next.causes = causes(counted, seen, threshold);
        }

        bool posted = true;
        if (d.event != Event::none) {
            std::string why = describe_causes(d.next.causes);
            std::string waiting =
                rows_waiting ? fmt::format(", {} rows waiting", *rows_waiting) : "";
            std::string message;
            Json f;
            f["table"] = cfg.destination;
            f["source_table"] = cfg.name;
            f["mode"] = config::mode_name(cfg.mode);
            f["lag_seconds"] = *lag;
            f["threshold_seconds"] = threshold;
            f["rows_waiting"] = rows_waiting ? Json(*rows_waiting) : Json(nullptr);
            f["since"] = time_json(d.next.since);
            if (d.event == Event::alert) {
                message = fmt::format("pipeline {}: table {} is {} behind (lag alert at {}){}; {}",
                                      settings.pipeline_name, cfg.destination, seconds_text(*lag),
                                      seconds_text(threshold), waiting, why);
                log::warn(tag, "lag alert{}: {} behind (threshold {}){}; {}",
                          d.repeat ? " (repeated)" : "", seconds_text(*lag),
                          seconds_text(threshold), waiting, why);
                f["repeat"] = d.repeat;
                f["causes"] = d.next.causes;
                if (cdc && slot)
                    f["slot"] = webhook::slot_json(*slot);
            } else {
                message = fmt::format("pipeline {}: table {} is back under its lag threshold: {} "
                                      "behind (lag alert at {}){}",
                                      settings.pipeline_name, cfg.destination, seconds_text(*lag),
                                      seconds_text(threshold), waiting);
                log::info(tag, "lag recovered: {} behind (threshold {}), alert since {}",
                          seconds_text(*lag), seconds_text(threshold),
                          before.since ? timeutil::iso_utc(*before.since) : "?");
                f["since"] = time_json(before.since);
            }
            const char *event = d.event == Event::alert ? "lag_alert" : "lag_recovered";
            if (!settings.webhook.url.empty())
                posted = webhook::deliver(settings.webhook, event, [&] {
                    return webhook::event_payload(event, settings.pipeline_name, message, f,
                                                  pgincr::version);
                });
            if (!posted) {
                log::warn(tag, "{} not delivered: the next run posts it again", event);
                d.next.active = counted.active;
                d.next.since = counted.since;
                d.next.alerted_at = counted.alerted_at;
                d.next.causes = counted.causes;
                d.next.lag_seconds = counted.lag_seconds;
                d.next.rows_waiting = counted.rows_waiting;
            }
        }

        // Written only when something changed: a steady state costs no fsync per cycle.
        if (to_json(d.next) == to_json(before))
            return;
        try {
            save(store, cfg.destination, d.next);
        } catch (const std::exception &e) {
            log::warn(tag, "cannot write the lag alert state: {}", e.what());
        }
    }
};

} // namespace

bool enabled(const config::Settings &settings, const std::vector<config::Table> &tables) {
    return std::any_of(tables.begin(), tables.end(), [&](const config::Table &t) {
        return config::lag_alert_threshold(settings, t).has_value();
    });
}

void check(const config::Settings &settings, const state::Store &store,
           const std::vector<config::Table> &tables, const RunSummary &run, pg::Connection *src,
           pg::Connection *primary) {
    try {
        Checker checker{settings, store, src, primary, std::nullopt, false};
        for (const auto &r : run.tables) {
            auto cfg = std::find_if(tables.begin(), tables.end(), [&](const config::Table &t) {
                return t.destination == r.destination;
            });
            if (cfg == tables.end())
                continue;
            auto threshold = config::lag_alert_threshold(settings, *cfg);
            if (!threshold)
                continue;
            checker.table(*cfg, r, *threshold, run.slot);
        }
    } catch (const std::exception &e) {
        log::warn("", "lag alerts not checked: {}", e.what());
    }
}

} // namespace pgincr::lag_alert
