// Webhook delivery against a real local HTTP receiver. No PostgreSQL needed.
#include "pgincr/version.hpp"
#include "support/http_receiver.hpp"
#include "util/hash.hpp"
#include "webhook.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>

using namespace pgincr;
using test::HttpReceiver;
using Clock = std::chrono::steady_clock;

namespace {
// Short waits between attempts so that the suite stays fast; the budget stays real.
const webhook::RetryPolicy fast{std::chrono::milliseconds(10), std::chrono::seconds(60)};

config::Webhook to(const std::string &url, int attempts = 3, int timeout_seconds = 5) {
    config::Webhook cfg;
    cfg.url = url;
    cfg.attempts = attempts;
    cfg.timeout_seconds = timeout_seconds;
    return cfg;
}

bool has(const std::string &text, const std::string &part) {
    if (text.find(part) != std::string::npos)
        return true;
    MESSAGE("'" << text << "' does not contain '" << part << "'");
    return false;
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

RunSummary small_run() {
    RunSummary run;
    run.pipeline = "app-public";
    run.run_id = "r1";
    run.started_at = std::chrono::system_clock::now();
    run.finished_at = run.started_at + std::chrono::milliseconds(250);
    TableResult t;
    t.name = "orders";
    t.destination = "orders";
    t.config_mode = "incremental-deduped";
    t.mode = SyncMode::incremental;
    t.ok = true;
    t.rows_copied = 3;
    run.tables.push_back(t);
    return run;
}
} // namespace

TEST_CASE("webhook delivery: one signed POST with the expected headers") {
    HttpReceiver receiver({200});
    auto cfg = to(receiver.url());
    cfg.secret = "s3cret-signing-key";
    const std::string body = R"({"event":"sync","pipeline":"p"})";

    const auto d = webhook::post(cfg, body, fast);
    CHECK(d.delivered);
    CHECK(d.attempts == 1);
    CHECK(d.last_http_status == 200);
    CHECK(d.last_error.empty());

    const auto requests = receiver.requests();
    REQUIRE(requests.size() == 1);
    const auto &r = requests[0];
    CHECK(r.method == "POST");
    CHECK(r.path() == "/hook");
    CHECK(r.body == body);
    CHECK(r.header("content-type") == "application/json");
    CHECK(r.header("USER-AGENT") == std::string("pgincr/") + pgincr::version);
    CHECK_FALSE(r.header("Expect"));

    const auto ts = r.header("X-Pgincr-Timestamp");
    const auto sig = r.header("X-Pgincr-Signature");
    REQUIRE(ts);
    REQUIRE(sig);
    const long long sent = std::atoll(ts->c_str());
    const long long now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    CHECK(std::llabs(now - sent) < 300);
    CHECK(*sig == "sha256=" + hash::hmac_sha256_hex(cfg.secret, *ts + "." + r.body));
}

TEST_CASE("webhook delivery: no secret - no signature headers") {
    HttpReceiver receiver({204});
    const auto d = webhook::post(to(receiver.url()), "{}", fast);
    CHECK(d.delivered);
    CHECK(d.last_http_status == 204);
    REQUIRE(receiver.request_count() == 1);
    CHECK_FALSE(receiver.requests()[0].header("X-Pgincr-Timestamp"));
    CHECK_FALSE(receiver.requests()[0].header("X-Pgincr-Signature"));
}

TEST_CASE("webhook delivery: 500 is retried up to the attempts - then given up") {
    HttpReceiver receiver({500});
    const auto d = webhook::post(to(receiver.url(), 3), "{}", fast);
    CHECK_FALSE(d.delivered);
    CHECK(d.attempts == 3);
    CHECK(d.last_http_status == 500);
    CHECK(has(d.last_error, "HTTP 500"));
    CHECK(receiver.request_count() == 3);
}

TEST_CASE("webhook delivery: 500 then 200 succeeds on the second attempt") {
    HttpReceiver receiver({500, 200});
    const auto d = webhook::post(to(receiver.url(), 3), "{}", fast);
    CHECK(d.delivered);
    CHECK(d.attempts == 2);
    CHECK(d.last_http_status == 200);
    CHECK(d.last_error.empty());
    CHECK(receiver.request_count() == 2);
}

TEST_CASE("webhook delivery: 429 is retried") {
    HttpReceiver receiver({429, 200});
    const auto d = webhook::post(to(receiver.url(), 3), "{}", fast);
    CHECK(d.delivered);
    CHECK(d.attempts == 2);
    CHECK(receiver.request_count() == 2);
}

TEST_CASE("webhook delivery: a Retry-After beyond the budget ends the retries at once") {
    HttpReceiver receiver({429}, {{"Retry-After", "3600"}});
    const auto start = Clock::now();
    const auto d = webhook::post(to(receiver.url(), 3), "{}", fast);
    CHECK(seconds_since(start) < 20);
    CHECK_FALSE(d.delivered);
    CHECK(d.attempts == 1);
    CHECK(d.last_http_status == 429);
    CHECK(has(d.last_error, "retry budget"));
}

TEST_CASE("webhook delivery: 404 is not retried") {
    HttpReceiver receiver({404});
    const auto d = webhook::post(to(receiver.url(), 3), "{}", fast);
    CHECK_FALSE(d.delivered);
    CHECK(d.attempts == 1);
    CHECK(d.last_http_status == 404);
    CHECK(has(d.last_error, "HTTP 404"));
    CHECK(receiver.request_count() == 1);
}

TEST_CASE("webhook delivery: a redirect is not followed") {
    HttpReceiver target({200});
    HttpReceiver receiver({302}, {{"Location", target.url()}});
    const auto d = webhook::post(to(receiver.url(), 3), "{}", fast);
    CHECK_FALSE(d.delivered);
    CHECK(d.attempts == 1);
    CHECK(d.last_http_status == 302);
    CHECK(has(d.last_error, "redirects are not followed"));
    CHECK(target.request_count() == 0);
}

TEST_CASE("webhook delivery: a hanging receiver costs at most the timeouts") {
    HttpReceiver receiver({HttpReceiver::hang});
    const auto start = Clock::now();
    const auto d = webhook::post(to(receiver.url(), 2, 1), "{}", fast);
    // A safety bound on a hang, not a performance assertion.
    CHECK(seconds_since(start) < 20);
    CHECK_FALSE(d.delivered);
    CHECK(d.attempts == 2);
    CHECK(d.last_http_status == 0);
    CHECK(has(d.last_error, "Timeout"));
    CHECK(receiver.request_count() == 2);
}

TEST_CASE("webhook delivery: the retry budget stops attempts early") {
    HttpReceiver receiver({HttpReceiver::hang});
    const webhook::RetryPolicy tight{std::chrono::milliseconds(10),
                                     std::chrono::milliseconds(2500)};
    const auto start = Clock::now();
    const auto d = webhook::post(to(receiver.url(), 10, 1), "{}", tight);
    CHECK(seconds_since(start) < 6);
    CHECK_FALSE(d.delivered);
    CHECK(d.attempts >= 2);
    CHECK(d.attempts <= 3);
    CHECK(has(d.last_error, "retry budget"));
}

TEST_CASE("webhook delivery: only http and https URLs are used") {
    const auto d = webhook::post(to("file:///etc/passwd"), "{}", fast);
    CHECK_FALSE(d.delivered);
    CHECK(d.attempts == 1);
    CHECK(d.last_http_status == 0);
    CHECK_FALSE(d.last_error.empty());
}

TEST_CASE("webhook delivery: credentials and tokens never appear in errors") {
    const std::string secret = "s3cret-signing-key";
    SUBCASE("HTTP error") {
        HttpReceiver receiver({500});
        auto cfg = to("http://alice:hunter2@127.0.0.1:" + std::to_string(receiver.port()) +
                          "/hook?token=tok3nvalue&x=1",
                      2);
        cfg.secret = secret;
        const auto d = webhook::post(cfg, "{}", fast);
        CHECK_FALSE(d.delivered);
        CHECK(has(d.last_error, "HTTP 500"));
        CHECK(has(d.last_error, "/hook?token=***&x=***"));
        for (const char *leak : {"alice", "hunter2", "tok3nvalue", secret.c_str()})
            CHECK_MESSAGE(d.last_error.find(leak) == std::string::npos, d.last_error);
        // The userinfo was still used, as Basic authentication.
        REQUIRE(receiver.request_count() == 2);
        CHECK(receiver.requests()[0].header("Authorization"));
        CHECK(receiver.requests()[0].target == "/hook?token=tok3nvalue&x=1");
    }
    SUBCASE("connection refused") {
        int port = 0;
        {
            HttpReceiver closed;
            port = closed.port();
        }
        auto cfg = to(
            "http://alice:hunter2@127.0.0.1:" + std::to_string(port) + "/hook?token=tok3nvalue", 2);
        cfg.secret = secret;
        const auto d = webhook::post(cfg, "{}", fast);
        CHECK_FALSE(d.delivered);
        CHECK(d.attempts == 2);
        CHECK(d.last_http_status == 0);
        CHECK(has(d.last_error, "127.0.0.1"));
        for (const char *leak : {"alice", "hunter2", "tok3nvalue", secret.c_str()})
            CHECK_MESSAGE(d.last_error.find(leak) == std::string::npos, d.last_error);
    }
}

TEST_CASE("webhook delivery: notify sends the run summary once") {
    HttpReceiver receiver({200});
    webhook::notify(to(receiver.url()), small_run());
    REQUIRE(receiver.request_count() == 1);
    const auto j = nlohmann::json::parse(receiver.requests()[0].body);
    CHECK(j.at("event") == "sync");
    CHECK(j.at("pipeline") == "app-public");
    CHECK(j.at("status") == "succeeded");
    CHECK(j.at("tables").size() == 1);
    CHECK(j.at("pgincr_version") == pgincr::version);
}

TEST_CASE("webhook delivery: notify without a URL sends nothing and does not throw") {
    CHECK_NOTHROW(webhook::notify(config::Webhook{}, small_run()));
}

TEST_CASE("webhook delivery: check posts the check payload") {
    HttpReceiver receiver({200});
    const auto d = webhook::check(to(receiver.url()), "app-public");
    CHECK(d.delivered);
    REQUIRE(receiver.request_count() == 1);
    const auto j = nlohmann::json::parse(receiver.requests()[0].body);
    CHECK(j.at("event") == "check");
    CHECK(j.at("pipeline") == "app-public");

    const auto none = webhook::check(config::Webhook{}, "app-public");
    CHECK_FALSE(none.delivered);
    CHECK(none.attempts == 0);
    CHECK(none.last_error == "WEBHOOK_URL is not set");
}
