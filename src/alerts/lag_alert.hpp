#pragma once
// Lag alerts (README.md, "Lag alerts"): when a table's lag reaches its threshold
// (the entry's "lag_alert_seconds", else LAG_ALERT_SECONDS), the webhook gets one
// "lag_alert" naming the table, its lag, the rows waiting and the causes pgincr can see;
// once the lag is back under, one "lag_recovered". While the lag stays over, the alert
// is repeated at most every LAG_ALERT_REPEAT_SECONDS, never every cycle.
//
// Each table's alert state is kept in sync-state/<destination>.lag-alert.json, beside
// the table's own state, so that a cron `pgincr sync` (a new process every time) knows
// what the previous run posted. It is a file of its own rather than a field of the
// table's state because that state has many writers (the sync, its failure path, the
// cdc mode, reset) that would each have to carry it over, and rather than the
// destination's progress row because that row commits with the rows and must not need
// a destination transaction, or a reachable destination, to record a webhook post.
// It is read and written under the run lock: `sync` checks before it releases it.
#include "config.hpp"
#include "pg/connection.hpp"
#include "source/watermark.hpp"
#include "state.hpp"
#include "summary.hpp"

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace pgincr::lag_alert {

using Clock = std::chrono::system_clock;

// What carries over from one run (or cycle) to the next, per table.
struct State {
    bool active = false;
    std::optional<Clock::time_point> since;         // when the lag reached the threshold
    std::optional<Clock::time_point> alerted_at;    // the last lag_alert posted
    int failed_runs = 0;                            // the table's failed syncs in a row
    std::optional<Clock::time_point> failing_since; // the first of those failures
    // As of the last alert or recovery, for `pgincr status`.
    std::optional<double> lag_seconds;
    std::optional<std::int64_t> rows_waiting;
    nlohmann::ordered_json causes = nlohmann::ordered_json::array();
};

enum class Event { none, alert, recovered };

struct Decision {
    Event event = Event::none;
    bool repeat = false; // an alert while one was already active
    State next;
};

// Pure: what `lag` against `threshold` means, given the state before. An unknown lag
// changes nothing. The lag reaching the threshold alerts once, then again only after
// `repeat_seconds`; falling under it recovers once.
Decision decide(const State &before, std::optional<double> lag, double threshold,
                double repeat_seconds, Clock::time_point now);

// Pure: the table's failure count after a run whose result was `ok`.
void count_run(State &state, bool ok, Clock::time_point now);

// Pure: the lag of a cdc table, the age of what it has not applied: the slot's
// seconds behind when it synced, else the time since it began failing.
std::optional<double> cdc_lag(const TableResult &result, const State &state, Clock::time_point now);

// What pgincr can see holding a table back, as the webhook's "causes": the oldest open
// source transaction when it is as old as the threshold (time keys), the late-commit
// guard's fallback window when it is that wide, the cdc slot when it is behind, the
// table's failures in a row. Pure.
struct Seen {
    std::optional<watermark::Horizon> horizon; // time-keyed entries only
    std::optional<SlotReport> slot;            // cdc entries only
    int fallback_lookback_seconds = 0;
    std::string last_error; // the table's, when its run failed
};
nlohmann::ordered_json causes(const State &state, const Seen &seen, double threshold);

// One line per cause, for the log and the webhook's message.
std::string describe_causes(const nlohmann::ordered_json &causes);

std::string to_json(const State &state);
State from_json(const std::string &text, const std::string &origin); // throws ConfigError

std::optional<State> load(const state::Store &store, const std::string &destination);
void save(const state::Store &store, const std::string &destination, const State &state);

// Whether any of `tables` has a threshold: otherwise check() has nothing to do, and
// the caller need not reach for the source.
bool enabled(const config::Settings &settings, const std::vector<config::Table> &tables);

// After a sync run or a watch cycle that was not interrupted and kept its lock: for each
// table of `run` whose entry has a threshold, measure its lag (live on `src`, or the
// stream's), decide, log, post, and save what was posted. An event whose post failed is
// not recorded, so the next run posts it again. `src` may be null (source out of reach:
// the lag of time-keyed tables is then unknown). Never throws.
void check(const config::Settings &settings, const state::Store &store,
           const std::vector<config::Table> &tables, const RunSummary &run, pg::Connection *src,
           pg::Connection *primary);

} // namespace pgincr::lag_alert
