#include "alerts/lag_alert.hpp"
#include "util/time.hpp"

#include <doctest/doctest.h>
#include <filesystem>

using namespace pgincr;
using namespace pgincr::lag_alert;
using namespace std::chrono_literals;

namespace {

const Clock::time_point t0 = Clock::time_point(std::chrono::seconds(1'800'000'000));

// Feeds `lags` one per minute from t0 and returns the events.
std::vector<Event> run_lags(const std::vector<std::optional<double>> &lags, double threshold,
                            double repeat_seconds, State *end = nullptr) {
    State s;
    std::vector<Event> out;
    auto now = t0;
    for (const auto &lag : lags) {
        auto d = decide(s, lag, threshold, repeat_seconds, now);
        out.push_back(d.event);
        s = d.next;
        now += 60s;
    }
    if (end)
        *end = s;
    return out;
}

} // namespace

TEST_CASE("lag alert: one alert when the lag reaches the threshold - one recovery when it is "
          "back under - nothing in between") {
    State end;
    auto ev = run_lags({1, 5, 9, 12, 3, 1, 0}, 5, 3600, &end);
    CHECK(ev == std::vector<Event>{Event::none, Event::alert, Event::none, Event::none,
                                   Event::recovered, Event::none, Event::none});
    CHECK_FALSE(end.active);
}

TEST_CASE("lag alert: an unknown lag changes nothing") {
    State end;
    auto ev = run_lags({10, std::nullopt, std::nullopt, 10, std::nullopt, 0}, 5, 3600, &end);
    CHECK(ev == std::vector<Event>{Event::alert, Event::none, Event::none, Event::none, Event::none,
                                   Event::recovered});
    ev = run_lags({std::nullopt, std::nullopt}, 5, 3600, &end);
    CHECK(ev == std::vector<Event>{Event::none, Event::none});
    CHECK_FALSE(end.active);
}

TEST_CASE("lag alert: an active alert repeats at most every LAG_ALERT_REPEAT_SECONDS") {
    // One minute apart, repeat every 150 s: alerts at 0, 180 and 360 s.
    auto ev = run_lags({10, 10, 10, 10, 10, 10, 10}, 5, 150);
    CHECK(ev == std::vector<Event>{Event::alert, Event::none, Event::none, Event::alert,
                                   Event::none, Event::none, Event::alert});
    State s;
    auto first = decide(s, 10, 5, 150, t0);
    CHECK_FALSE(first.repeat);
    REQUIRE(first.next.since);
    CHECK(*first.next.since == t0);
    auto again = decide(first.next, 10, 5, 150, t0 + 150s);
    CHECK(again.event == Event::alert);
    CHECK(again.repeat);
    CHECK(*again.next.since == t0); // still the moment it began
    CHECK(*again.next.alerted_at == t0 + 150s);
}

TEST_CASE("lag alert: a recovery then a new crossing alerts again at once") {
    auto ev = run_lags({10, 0, 10}, 5, 3600);
    CHECK(ev == std::vector<Event>{Event::alert, Event::recovered, Event::alert});
}

TEST_CASE("lag alert: the threshold itself counts as reached") {
    CHECK(decide(State{}, 5.0, 5.0, 3600, t0).event == Event::alert);
    CHECK(decide(State{}, 4.999, 5.0, 3600, t0).event == Event::none);
}

TEST_CASE("lag alert: failures in a row are counted - a cdc table's lag while failing is the "
          "time since it began failing") {
    State s;
    count_run(s, false, t0);
    count_run(s, false, t0 + 30s);
    CHECK(s.failed_runs == 2);
    REQUIRE(s.failing_since);
    CHECK(*s.failing_since == t0);

    TableResult failed;
    CHECK(cdc_lag(failed, s, t0 + 40s) == 40.0);
    TableResult ok;
    ok.ok = true;
    ok.lag_seconds = 1.5;
    CHECK(cdc_lag(ok, s, t0 + 40s) == 1.5);
    CHECK_FALSE(cdc_lag(failed, State{}, t0));

    count_run(s, true, t0 + 60s);
    CHECK(s.failed_runs == 0);
    CHECK_FALSE(s.failing_since);
}

TEST_CASE("lag alert: causes name the old open transaction - the fallback window - a slot "
          "behind - failures") {
    Seen seen;
    watermark::Horizon h;
    h.sees_all = true;
    h.oldest = watermark::OpenTransaction{4242, "report_job", "idle in transaction", 30.0};
    seen.horizon = h;
    seen.fallback_lookback_seconds = 900;
    State s;
    auto c = causes(s, seen, 10);
    REQUIRE(c.size() == 1);
    CHECK(c[0]["kind"] == "open_transaction");
    CHECK(c[0]["pid"] == 4242);
    CHECK(c[0]["application_name"] == "report_job");
    CHECK(c[0]["state"] == "idle in transaction");
    auto text = describe_causes(c);
    CHECK(text.find("pid 4242") != std::string::npos);
    CHECK(text.find("report_job") != std::string::npos);

    // A transaction younger than the threshold does not explain it.
    CHECK(causes(s, seen, 60).empty());
    CHECK(describe_causes(causes(s, seen, 60)).find("no cause") != std::string::npos);

    // A role without pg_read_all_stats: the fallback window holds every mark back.
    seen.horizon->sees_all = false;
    seen.horizon->oldest.reset();
    c = causes(s, seen, 60);
    REQUIRE(c.size() == 1);
    CHECK(c[0]["kind"] == "fallback_window");
    CHECK(causes(s, seen, 1000).empty()); // a 900 s window cannot make a 1000 s lag

    Seen cdc;
    SlotReport slot;
    slot.name = "pgincr_x";
    slot.exists = true;
    slot.retained_bytes = 3 << 20;
    slot.behind_bytes = 1 << 20;
    slot.behind_seconds = 12;
    cdc.slot = slot;
    cdc.last_error = "boom";
    count_run(s, false, t0);
    c = causes(s, cdc, 10);
    REQUIRE(c.size() == 2);
    CHECK(c[0]["kind"] == "slot");
    CHECK(c[0]["retained_bytes"] == 3 << 20);
    CHECK(c[1]["kind"] == "failures");
    CHECK(c[1]["failed_runs"] == 1);
    CHECK(c[1]["last_error"] == "boom");
    slot.behind_bytes = 0;
    cdc.slot = slot;
    CHECK(causes(State{}, cdc, 10).empty());
}

TEST_CASE("lag alert: the state survives a round trip through its file") {
    auto dir = std::filesystem::temp_directory_path() / "pgincr-unit-lag-alert";
    std::filesystem::remove_all(dir);
    state::Store store(dir);
    CHECK_FALSE(load(store, "orders"));
    auto d = decide(State{}, 12.5, 5, 3600, t0 + 123ms);
    d.next.rows_waiting = 7;
    d.next.causes = nlohmann::ordered_json::array({{{"kind", "failures"}, {"failed_runs", 2}}});
    count_run(d.next, false, t0);
    save(store, "orders", d.next);
    // Beside the table's own file, never in its place.
    CHECK(store.sibling_path("orders", "lag-alert") != store.path_for("orders"));
    CHECK(store.sibling_path("orders", "lag-alert") != store.path_for("orders.lag-alert"));
    auto back = load(store, "orders");
    REQUIRE(back);
    CHECK(to_json(*back) == to_json(d.next));
    CHECK(back->active);
    CHECK(*back->since == t0 + 123ms);
    CHECK(back->rows_waiting == 7);
    CHECK(back->failed_runs == 1);
    std::filesystem::remove_all(dir);
}

TEST_CASE("time: parse_iso_utc reads what iso_utc writes") {
    auto t = t0 + 456ms;
    CHECK(timeutil::parse_iso_utc(timeutil::iso_utc(t, true)) == t);
    CHECK(timeutil::parse_iso_utc(timeutil::iso_utc(t)) == t0);
    CHECK_FALSE(timeutil::parse_iso_utc("yesterday"));
    CHECK_FALSE(timeutil::parse_iso_utc("2026-13-40T00:00:00Z"));
}
