#include "webhook.hpp"

#include "pgincr/version.hpp"
#include "util/hash.hpp"
#include "util/log.hpp"
#include "util/time.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace pgincr::webhook {

namespace {

using Json = nlohmann::ordered_json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Longest error text quoted per table in the one-line message, and how many failed
// tables are quoted there at all (the `tables` array carries every error in full).
constexpr std::size_t message_error_bytes = 160;
constexpr std::size_t message_failures = 3;

// Invalid UTF-8 (a server error in LATIN1, say) becomes U+FFFD instead of a throw.
std::string dump(const Json &j) {
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Control characters become blanks, runs of blanks one blank, and the result is cut
// on a UTF-8 character boundary so that a message stays one readable line.
std::string one_line(const std::string &text, std::size_t max_bytes = std::string::npos) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        bool blank = c < 0x20 || c == 0x7f || c == ' ';
        if (blank) {
            if (!out.empty() && out.back() != ' ')
                out += ' ';
        } else {
            out += static_cast<char>(c);
        }
    }
    while (!out.empty() && out.back() == ' ')
        out.pop_back();
    if (out.size() > max_bytes) {
        std::size_t cut = max_bytes;
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xc0) == 0x80)
            --cut;
        out.resize(cut);
        out += "...";
    }
    return out;
}

std::int64_t ms_between(std::chrono::system_clock::time_point a,
                        std::chrono::system_clock::time_point b) {
    return std::chrono::duration_cast<milliseconds>(b - a).count();
}

// "Pipeline app-public partially failed. Summary: 3 tables, 2 ok, 1 failed (orders:
// <error>); 1200 rows copied, 35 merged; took 4.2 s."
std::string message(const RunSummary &run) {
    const std::string status = run.status();
    std::string outcome = status == "partial" ? "partially failed" : status;
    if (run.interrupted)
        outcome += " (interrupted)";

    std::size_t ok = 0;
    std::int64_t copied = 0;
    std::int64_t merged = 0;
    std::int64_t deleted = 0;
    std::vector<std::string> failures;
    for (const auto &t : run.tables) {
        copied += t.rows_copied;
        merged += t.rows_merged;
        deleted += t.rows_deleted;
        if (t.ok) {
            ++ok;
        } else if (failures.size() < message_failures) {
            std::string why = one_line(t.error, message_error_bytes);
            failures.push_back(why.empty() ? t.name : fmt::format("{}: {}", t.name, why));
        }
    }
    const std::size_t failed = run.tables.size() - ok;

    std::string out = fmt::format("Pipeline {} {}. Summary: {} table{}, {} ok, {} failed",
                                  run.pipeline.empty() ? "(unnamed)" : run.pipeline, outcome,
                                  run.tables.size(), run.tables.size() == 1 ? "" : "s", ok, failed);
    if (!failures.empty()) {
        out += " (";
        for (std::size_t i = 0; i < failures.size(); ++i)
            out += (i ? "; " : "") + failures[i];
        if (failed > failures.size())
            out += fmt::format("; and {} more", failed - failures.size());
        out += ")";
    }
    out += fmt::format("; {} rows copied, {} merged", copied, merged);
    // Only when something was deleted: the old tool's message stays as it was otherwise.
    if (deleted > 0)
        out += fmt::format(", {} deleted", deleted);
    out += fmt::format("; took {:.1f} s.",
                       static_cast<double>(ms_between(run.started_at, run.finished_at)) / 1000.0);
    // Pipeline names and table names come from config; keep even those on one line.
    return one_line(out);
}

template <typename T> Json or_null(const std::optional<T> &v) {
    return v ? Json(*v) : Json(nullptr);
}

} // namespace

Json slot_json(const SlotReport &s) {
    Json j;
    j["name"] = s.name;
    j["exists"] = s.exists;
    j["wal_status"] = or_null(s.wal_status);
    j["retained_bytes"] = or_null(s.retained_bytes);
    j["behind_bytes"] = or_null(s.behind_bytes);
    j["behind_seconds"] = or_null(s.behind_seconds);
    j["confirmed_lsn"] = or_null(s.confirmed_lsn);
    return j;
}

namespace {

Json table_json(const TableResult &t) {
    Json j;
    j["name"] = t.name;
    j["destination"] = t.destination;
    j["mode"] = sync_mode_name(t.mode);
    j["config_mode"] = t.config_mode;
    j["status"] = t.ok ? "ok" : "failed";
    j["rows_copied"] = t.rows_copied;
    j["rows_merged"] = t.rows_merged;
    j["rows_deleted"] = t.rows_deleted;
    j["conflicts"] = t.conflicts;
    j["watermark"] = t.watermark ? Json(*t.watermark) : Json(nullptr);
    j["lag_seconds"] = t.lag_seconds ? Json(*t.lag_seconds) : Json(nullptr);
    j["duration_ms"] = t.duration_ms;
    j["error"] = t.error.empty() ? Json(nullptr) : Json(t.error);
    return j;
}

// A path segment that is probably a credential: Slack's
// /services/T0000/B0000/<24 characters>, Discord's /api/webhooks/<id>/<token>, Teams'
// GUIDs. Short, word-like segments (/hook, /services, /v1) stay readable.
bool token_like(const std::string &segment) {
    bool letter = false;
    bool digit = false;
    for (unsigned char c : segment) {
        letter = letter || std::isalpha(c);
        digit = digit || std::isdigit(c);
    }
    return segment.size() >= 16 && letter && digit;
}

// ---------------------------------------------------------------------------------
// libcurl

std::once_flag curl_once;
CURLcode curl_init_rc = CURLE_OK;

struct EasyDeleter {
    void operator()(CURL *h) const { curl_easy_cleanup(h); }
};
struct SlistDeleter {
    void operator()(curl_slist *l) const { curl_slist_free_all(l); }
};
using Easy = std::unique_ptr<CURL, EasyDeleter>;
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

void append(Slist &list, const std::string &header) {
    curl_slist *grown = curl_slist_append(list.get(), header.c_str());
    if (!grown)
        throw std::bad_alloc();
    (void)list.release();
    list.reset(grown);
}

// The response body is of no interest, and libcurl's default would print it to stdout.
std::size_t discard_body(char *, std::size_t size, std::size_t count, void *) {
    return size * count;
}

struct Attempt {
    CURLcode rc = CURLE_OK;
    long status = 0;
    milliseconds retry_after{0};
};

std::string unix_seconds_now() {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count());
}

// One POST. Returns the transport result and, when a response came, its status.
Attempt send_once(const config::Webhook &cfg, const std::string &body, milliseconds timeout) {
    Attempt a;
    Easy h(curl_easy_init());
    if (!h) {
        a.rc = CURLE_FAILED_INIT;
        return a;
    }
    Slist headers;
    append(headers, "Content-Type: application/json");
    append(headers, "Expect:"); // no 100-continue round trip
    if (!cfg.secret.empty()) {
        // A fresh timestamp per attempt, so that a retry is not rejected as stale.
        const std::string ts = unix_seconds_now();
        append(headers, "X-Pgincr-Timestamp: " + ts);
        append(headers, "X-Pgincr-Signature: " + signature(cfg.secret, ts, body));
    }
    const std::string agent = std::string("pgincr/") + pgincr::version;
    const long timeout_ms = static_cast<long>(timeout.count());

    CURL *c = h.get();
    curl_easy_setopt(c, CURLOPT_URL, cfg.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    // Redirects are not followed: re-POSTing the signed summary to wherever a Location
    // header points is not something to do silently. A 3xx is a final failure whose
    // message says so, and the fix is to configure the final URL.
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_USERAGENT, agent.c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);

    a.rc = curl_easy_perform(c);
    if (a.rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
        curl_off_t retry_after = 0;
        if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0)
            a.retry_after = std::chrono::seconds(std::min<curl_off_t>(retry_after, 3600));
    }
    return a;
}

// Transport errors worth another attempt: everything but a URL, TLS or build problem
// that the next attempt would hit again.
bool transient(CURLcode rc) {
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_FAILED_INIT:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_LOGIN_DENIED:
        return false;
    default:
        return true;
    }
}

std::string describe_failure(const Attempt &a, const std::string &where, milliseconds timeout) {
    // Only libcurl's fixed message for the code, never its error buffer: that can
    // quote the URL with its credentials or query token.
    if (a.rc == CURLE_OPERATION_TIMEDOUT)
        return fmt::format("{}: {} (limit {} ms)", where, curl_easy_strerror(a.rc),
                           timeout.count());
    if (a.rc != CURLE_OK)
        return fmt::format("{}: {}", where, curl_easy_strerror(a.rc));
    if (a.status >= 300 && a.status < 400)
        return fmt::format("{}: HTTP {} (redirects are not followed; configure the final URL)",
                           where, a.status);
    return fmt::format("{}: HTTP {}", where, a.status);
}

} // namespace

std::string payload(const RunSummary &run, const std::string &version) {
    Json j;
    j["event"] = run.cycle ? "watch" : "sync";
    j["pipeline"] = run.pipeline;
    j["status"] = run.status();
    j["message"] = message(run);
    j["run_id"] = run.run_id;
    if (run.cycle)
        j["cycle"] = *run.cycle;
    j["started_at"] = timeutil::iso_utc(run.started_at, true);
    j["finished_at"] = timeutil::iso_utc(run.finished_at, true);
    j["duration_ms"] = ms_between(run.started_at, run.finished_at);
    j["interrupted"] = run.interrupted;
    j["pgincr_version"] = version;
    Json tables = Json::array();
    for (const auto &t : run.tables)
        tables.push_back(table_json(t));
    j["tables"] = std::move(tables);
    if (run.slot)
        j["slot"] = slot_json(*run.slot);
    return dump(j);
}

std::string check_payload(const std::string &pipeline, const std::string &version) {
    Json j;
    j["event"] = "check";
    j["pipeline"] = pipeline;
    j["message"] = "pgincr check: webhook reachable";
    j["sent_at"] = timeutil::iso_utc(std::chrono::system_clock::now(), true);
    j["pgincr_version"] = version;
    return dump(j);
}

std::string event_payload(const std::string &event, const std::string &pipeline,
                          const std::string &message, const Json &fields,
                          const std::string &version) {
    Json j;
    j["event"] = event;
    j["pipeline"] = pipeline;
    j["message"] = message;
    for (const auto &[k, v] : fields.items())
        j[k] = v;
    j["sent_at"] = timeutil::iso_utc(std::chrono::system_clock::now(), true);
    j["pgincr_version"] = version;
    return dump(j);
}

std::string redact_url(const std::string &url) {
    std::string scheme;
    std::string rest = url;
    if (auto p = url.find("://"); p != std::string::npos) {
        scheme = url.substr(0, p + 3);
        rest = url.substr(p + 3);
    }
    // The fragment is never sent; drop it rather than judge it.
    rest = rest.substr(0, rest.find('#'));

    const std::size_t authority_end = rest.find_first_of("/?");
    std::string authority = rest.substr(0, authority_end);
    std::string tail = authority_end == std::string::npos ? "" : rest.substr(authority_end);
    if (auto at = authority.rfind('@'); at != std::string::npos)
        authority = authority.substr(at + 1);

    const std::size_t q = tail.find('?');
    std::string path = tail.substr(0, q);
    std::string redacted_path;
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t slash = path.find('/', start);
        std::string segment = path.substr(start, slash - start);
        redacted_path += token_like(segment) ? "***" : segment;
        if (slash == std::string::npos)
            break;
        redacted_path += '/';
        start = slash + 1;
    }

    std::string out = scheme + authority + redacted_path;
    if (q != std::string::npos) {
        const std::string query = tail.substr(q + 1);
        out += '?';
        std::size_t from = 0;
        bool first = true;
        while (from <= query.size()) {
            std::size_t amp = query.find('&', from);
            std::string param = query.substr(from, amp - from);
            if (!first)
                out += '&';
            first = false;
            // A bare parameter ("?abc123") may be the token itself.
            if (auto eq = param.find('='); eq != std::string::npos)
                out += param.substr(0, eq) + "=***";
            else if (!param.empty())
                out += "***";
            if (amp == std::string::npos)
                break;
            from = amp + 1;
        }
    }
    return out;
}

std::string signature(const std::string &secret, const std::string &timestamp,
                      const std::string &body) {
    return "sha256=" + hash::hmac_sha256_hex(secret, timestamp + "." + body);
}

Delivery post(const config::Webhook &cfg, const std::string &body,
              const RetryPolicy &policy) noexcept {
    Delivery d;
    try {
        const std::string where = redact_url(cfg.url);
        if (cfg.url.empty()) {
            d.last_error = "no webhook URL configured";
            return d;
        }
        std::call_once(curl_once, [] { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
        if (curl_init_rc != CURLE_OK) {
            d.last_error =
                fmt::format("libcurl initialization failed: {}", curl_easy_strerror(curl_init_rc));
            return d;
        }

        const int attempts = std::max(1, cfg.attempts);
        const milliseconds per_attempt{std::max(1, cfg.timeout_seconds) * 1000L};
        // Not worth starting an attempt with less time than this left in the budget.
        const milliseconds least_attempt = std::min(per_attempt, milliseconds{1000});
        const auto deadline = Clock::now() + policy.budget;
        milliseconds backoff = policy.first_backoff;

        for (int i = 1; i <= attempts; ++i) {
            const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
            const milliseconds timeout = std::min(per_attempt, left);
            if (timeout <= milliseconds{0})
                break;
            ++d.attempts;
            const Attempt a = send_once(cfg, body, timeout);
            d.last_http_status = a.status;
            if (a.rc == CURLE_OK && a.status >= 200 && a.status < 300) {
                d.delivered = true;
                d.last_error.clear();
                return d;
            }
            d.last_error = describe_failure(a, where, timeout);
            const bool retry =
                a.rc != CURLE_OK ? transient(a.rc) : (a.status >= 500 || a.status == 429);
            if (!retry || i == attempts)
                break;

            const milliseconds wait = std::max(backoff, a.retry_after);
            backoff *= 2;
            if (Clock::now() + wait + least_attempt > deadline) {
                d.last_error += fmt::format("; no attempt left within the {} s retry budget",
                                            policy.budget.count() / 1000);
                break;
            }
            std::this_thread::sleep_for(wait);
        }
    } catch (const std::exception &e) {
        d.last_error = fmt::format("webhook delivery failed: {}", e.what());
    } catch (...) {
        d.last_error = "webhook delivery failed";
    }
    return d;
}

bool deliver(const config::Webhook &cfg, const std::string &what,
             const std::function<std::string()> &body) noexcept {
    try {
        if (cfg.url.empty()) {
            log::debug("", "webhook: WEBHOOK_URL is not set, no {} sent", what);
            return false;
        }
        const Delivery d = post(cfg, body());
        if (d.delivered)
            log::info("", "webhook: {} delivered to {} (HTTP {}, {} attempt{})", what,
                      redact_url(cfg.url), d.last_http_status, d.attempts,
                      d.attempts == 1 ? "" : "s");
        else
            log::warn("", "webhook: {} not delivered after {} attempt{}: {}", what, d.attempts,
                      d.attempts == 1 ? "" : "s", d.last_error);
        return d.delivered;
    } catch (...) {
        // Building the payload can only fail on memory exhaustion; the run's outcome
        // stands regardless, and logging may fail the same way.
        try {
            log::warn("", "webhook: {} not sent (internal error)", what);
        } catch (...) {
        }
    }
    return false;
}

void notify(const config::Webhook &cfg, const RunSummary &run) noexcept {
    deliver(cfg, run.cycle ? "cycle summary" : "run summary",
            [&] { return payload(run, pgincr::version); });
}

Delivery check(const config::Webhook &cfg, const std::string &pipeline) noexcept {
    Delivery d;
    try {
        if (cfg.url.empty()) {
            d.last_error = "WEBHOOK_URL is not set";
            return d;
        }
        return post(cfg, check_payload(pipeline, pgincr::version));
    } catch (...) {
        // Only memory exhaustion gets here: report "not delivered" without a text.
    }
    return d;
}

} // namespace pgincr::webhook
