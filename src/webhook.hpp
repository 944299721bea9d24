#pragma once
// The run webhook: one JSON summary POSTed after each `pgincr sync` (and a probe for
// `pgincr check`). Delivery retries transient failures within a bounded time and never
// throws: a webhook that is down must not fail or block the sync.
//
// Nothing here logs or returns the raw URL or the secret: logs and errors carry
// redact_url(url) only.
#include "config.hpp"
#include "summary.hpp"

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace pgincr::webhook {

// The sync summary as JSON: event "sync", pipeline, status, a one-line message (the
// old tool's "Pipeline <name> succeeded. Summary: ..."), timestamps, run_id and one
// object per table. Invalid UTF-8 in error texts is replaced, never thrown on.
std::string payload(const RunSummary &run, const std::string &version);

// The cdc slot's report, as the payload's "slot" and `status --json` show it.
nlohmann::ordered_json slot_json(const SlotReport &slot);

// Any other event (`pgincr watch`'s start, stop and unreachable servers): event,
// pipeline, message, then `fields`, then sent_at and pgincr_version.
std::string event_payload(const std::string &event, const std::string &pipeline,
                          const std::string &message, const nlohmann::ordered_json &fields,
                          const std::string &version);

// The body `pgincr check` sends: event "check", pipeline, message, sent_at.
std::string check_payload(const std::string &pipeline, const std::string &version);

// The URL as it may be logged: no user:password@, every query value replaced by "***"
// (names kept), no #fragment, and path segments that look like tokens (16+ characters
// mixing letters and digits, as in Slack or Discord hook URLs) replaced by "***".
std::string redact_url(const std::string &url);

// The X-Pgincr-Signature header value: "sha256=" + hex HMAC-SHA256 keyed with `secret`
// over `timestamp + "." + body`, where `timestamp` is the X-Pgincr-Timestamp header
// (Unix seconds). A receiver recomputes it and also rejects stale timestamps.
std::string signature(const std::string &secret, const std::string &timestamp,
                      const std::string &body);

// How post() spaces its attempts. The defaults are the production values; tests
// shorten them.
struct RetryPolicy {
    std::chrono::milliseconds first_backoff{1000}; // doubled after each failed attempt
    std::chrono::milliseconds budget{60000};       // all attempts and waits together
};

struct Delivery {
    bool delivered = false;
    int attempts = 0;          // requests actually sent (or tried)
    long last_http_status = 0; // 0 when no response was received
    std::string last_error;    // empty when delivered; holds only the redacted URL
};

// POSTs `body` to cfg.url. Up to cfg.attempts attempts, each limited to
// cfg.timeout_seconds; network errors, 5xx and 429 are retried after a backoff
// (Retry-After is honoured when it fits), other statuses are final. Success is a 2xx.
// Stops early when the policy's budget would be exceeded. Never throws.
Delivery post(const config::Webhook &cfg, const std::string &body,
              const RetryPolicy &policy = {}) noexcept;

// Posts body() and logs one line with the outcome, naming `what` (a warning when not
// delivered). Does nothing when cfg.url is empty. Never throws. True when delivered.
bool deliver(const config::Webhook &cfg, const std::string &what,
             const std::function<std::string()> &body) noexcept;

// Sends the run summary and logs one line with the outcome (a warning when not
// delivered). Does nothing when cfg.url is empty. Never throws.
void notify(const config::Webhook &cfg, const RunSummary &run) noexcept;

// Sends check_payload(pipeline) for `pgincr check`. With no URL configured, returns
// delivered = false, attempts = 0 and an explanation.
Delivery check(const config::Webhook &cfg, const std::string &pipeline) noexcept;

} // namespace pgincr::webhook
