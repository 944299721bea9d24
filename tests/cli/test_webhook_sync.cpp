// The webhook as a downstream job sees it: one POST per `pgincr sync`, with numbers
// that match what the run did, delivered without ever changing the run's outcome.
#include "support/http_receiver.hpp"
#include "support/pipeline.hpp"

#include <boost/process.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

using namespace pgincr;
using namespace pgincr::test;
using Json = nlohmann::json;
namespace bp = boost::process;

namespace {

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

void seed(Pipeline &p, const std::string &table, int rows) {
    p.src().exec(fmt::format("CREATE TABLE {} (id int PRIMARY KEY, v int, updated_at timestamptz "
                             "NOT NULL)",
                             table));
    p.src().exec(fmt::format("INSERT INTO {} SELECT g, g, '2025-01-01'::timestamptz + g * "
                             "interval '1 minute' FROM generate_series(1, {}) g",
                             table, rows));
}

const Json &table_named(const Json &body, const std::string &destination) {
    for (const auto &t : body.at("tables"))
        if (t.at("destination") == destination)
            return t;
    FAIL("no table " << destination << " in " << body.dump());
    throw std::logic_error("unreachable");
}

// The README's Python verification snippet, run as written against one request.
bool readme_snippet_verifies(const std::string &secret, const HttpRequest &request,
                             const WorkDir &dir) {
    auto text = read_text(source_dir() / "README.md");
    auto start = text.find("```python\n");
    REQUIRE(start != std::string::npos);
    start += 10;
    auto code = text.substr(start, text.find("```", start) - start);
    dir.write("body.bin", request.body);
    dir.write("verify.py",
              code + fmt::format("\nimport sys\nheaders = {{'X-Pgincr-Timestamp': '{}', "
                                 "'X-Pgincr-Signature': '{}'}}\nbody = open('body.bin', "
                                 "'rb').read()\nsys.exit(0 if verify({}, headers, body) else 1)\n",
                                 request.header("X-Pgincr-Timestamp").value_or(""),
                                 request.header("X-Pgincr-Signature").value_or(""),
                                 Json(secret).dump() + ".encode()"));
    return bp::system(bp::search_path("python3"), "verify.py", bp::start_dir(dir.path().string()),
                      bp::std_out > bp::null) == 0;
}

} // namespace

TEST_CASE("webhook: one POST per sync with the numbers of an initial - an incremental and a "
          "failing table") {
    HttpReceiver receiver({200});
    Pipeline p("webhook_numbers", "public", "replica",
               fmt::format("PIPELINE_NAME=nightly\nWEBHOOK_URL={}\nWEBHOOK_SECRET=hook-key\n",
                           receiver.url()));
    seed(p, "old_t", 100);
    p.tables(R"([{"name": "old_t", "replication_key": "updated_at"}])");
    REQUIRE_SYNC(p, 0);
    REQUIRE(receiver.request_count() == 1);

    // old_t: 5 rows change (plus the row at the mark, read again); new_t: first load.
    p.src().exec("UPDATE old_t SET v = -v, updated_at = '2026-01-01' WHERE id <= 5");
    seed(p, "new_t", 20);
    p.tables(R"([{"name": "old_t", "replication_key": "updated_at"},
                 {"name": "new_t", "replication_key": "updated_at"},
                 {"name": "gone_t", "replication_key": "updated_at"}])");
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);

    auto requests = receiver.requests();
    REQUIRE(requests.size() == 2);
    const auto &req = requests[1];
    CHECK(req.method == "POST");
    CHECK(req.header("Content-Type") == "application/json");
    CHECK(contains(req.header("User-Agent").value_or(""), "pgincr/"));
    CHECK(readme_snippet_verifies("hook-key", req, p.dir));
    CHECK_FALSE(readme_snippet_verifies("another-key", req, p.dir));

    auto body = Json::parse(req.body);
    CHECK(body["event"] == "sync");
    CHECK(body["pipeline"] == "nightly");
    CHECK(body["status"] == "partial");
    CHECK(contains(body["message"].get<std::string>(), "Pipeline nightly"));
    CHECK(body["duration_ms"].get<long long>() >= 0);
    CHECK(body["run_id"].get<std::string>().size() == 16);
    CHECK(body["tables"].size() == 3);

    const auto &old_t = table_named(body, "old_t");
    CHECK(old_t["mode"] == "incremental");
    CHECK(old_t["status"] == "ok");
    CHECK(old_t["rows_copied"] == 6);
    CHECK(old_t["rows_merged"] == 5);
    CHECK(old_t["watermark"] == p.state("old_t")->watermark.value_or(""));
    CHECK(old_t["error"].is_null());

    const auto &new_t = table_named(body, "new_t");
    CHECK(new_t["mode"] == "initial");
    CHECK(new_t["status"] == "ok");
    CHECK(new_t["rows_copied"] == 20);
    CHECK(new_t["watermark"] == p.state("new_t")->watermark.value_or(""));

    const auto &gone_t = table_named(body, "gone_t");
    CHECK(gone_t["status"] == "failed");
    CHECK(gone_t["rows_copied"] == 0);
    CHECK(contains(gone_t["error"].get<std::string>(), "gone_t"));

    // A run where nothing can connect still sends exactly one POST, status failed.
    auto env = p.dir.read(".env");
    auto at = env.find("SOURCE_PORT=");
    p.dir.write(".env", env.replace(at, env.find('\n', at) - at, "SOURCE_PORT=1"));
    r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 1);
    requests = receiver.requests();
    REQUIRE(requests.size() == 3);
    CHECK(Json::parse(requests[2].body)["status"] == "failed");
}

TEST_CASE("webhook: a receiver answering 500 is retried then given up - the sync stands") {
    HttpReceiver receiver({500});
    Pipeline p("webhook_500", "public", "replica",
               fmt::format("WEBHOOK_URL={}\nWEBHOOK_ATTEMPTS=3\n", receiver.url()));
    seed(p, "t", 10);
    p.tables(R"([{"name": "t", "replication_key": "updated_at"}])");
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 0);
    CHECK(receiver.request_count() == 3);
    CHECK(contains(r.err, "500"));
    CHECK(p.equal("t"));
    REQUIRE(p.state("t"));
    CHECK(p.state("t")->last_sync->result == "ok");
}

TEST_CASE("webhook: a receiver that never answers costs the timeouts and nothing else") {
    HttpReceiver receiver({HttpReceiver::hang});
    Pipeline p("webhook_hang", "public", "replica",
               fmt::format("WEBHOOK_URL={}\nWEBHOOK_TIMEOUT_SECONDS=1\nWEBHOOK_ATTEMPTS=2\n",
                           receiver.url()));
    seed(p, "t", 10);
    p.tables(R"([{"name": "t", "replication_key": "updated_at"}])");
    auto r = p.sync();
    INFO(r.all());
    CHECK(r.exit_code == 0);
    CHECK(receiver.request_count() == 2);
    CHECK(contains(r.err, "WARN"));
    CHECK(p.equal("t"));
    // The lock was released before the webhook: another run could have started.
    CHECK(p.state("t"));
}

TEST_CASE("webhook: URL credentials - tokens and passwords never appear in output or body") {
    HttpReceiver receiver({503, 200});
    auto url = receiver.url();
    auto userinfo = url.replace(url.find("127.0.0.1"), 9, "hookuser:url-pass-XY7@127.0.0.1");
    Pipeline p("webhook_secrets", "public", "replica",
               fmt::format("WEBHOOK_URL={}?token=tok-9f8e7d6c5b4a\nWEBHOOK_SECRET=sig-key-QQ\n",
                           userinfo));
    seed(p, "t", 10);
    p.tables(R"([{"name": "t", "replication_key": "updated_at"},
                 {"name": "missing", "replication_key": "updated_at"}])");
    auto r = p.sync({{"PGINCR_PG_DUMP", "/nonexistent/pg_dump"}, {"PGINCR_LOAD_VIA", "pg_dump"}});
    INFO(r.all());
    CHECK(r.exit_code == 1);
    auto c = p.run({"check", "-v"});
    INFO(c.all());
    auto requests = receiver.requests();
    REQUIRE(requests.size() >= 2);
    CHECK(contains(requests[0].target, "token=tok-9f8e7d6c5b4a"));
    for (const auto &secret : {std::string("url-pass-XY7"), std::string("tok-9f8e7d6c5b4a"),
                               std::string("sig-key-QQ"), env_or_fail("PGINCR_TEST_PASSWORD")}) {
        CHECK_FALSE(contains(r.all(), secret));
        CHECK_FALSE(contains(c.all(), secret));
        for (const auto &req : requests)
            CHECK_FALSE(contains(req.body, secret));
    }
}
