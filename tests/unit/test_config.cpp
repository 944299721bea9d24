#include "config.hpp"
#include "util/dotenv.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>

using namespace pgincr;

namespace {
bool has(const std::string &text, const std::string &part) {
    if (text.find(part) != std::string::npos)
        return true;
    MESSAGE("'" << text << "' does not contain '" << part << "'");
    return false;
}

std::filesystem::path write_temp(const std::string &name, const std::string &content) {
    auto dir = std::filesystem::temp_directory_path() / "pgincr-unit";
    std::filesystem::create_directories(dir);
    auto path = dir / name;
    std::ofstream(path) << content;
    return path;
}

const char *old_tool_env = R"(SOURCE_HOST=src.example.com
SOURCE_USERNAME=reader
SOURCE_PASSWORD=s3cret
SOURCE_DB=app
SOURCE_PORT=5433
SOURCE_SCHEMA=public
DEST_HOST=dw.example.com
DEST_USERNAME=writer
DEST_PASSWORD=other
DEST_DB=warehouse
DEST_PORT=5432
DEST_SCHEMA=public
PIPELINE_NAME=app-public
WEBHOOK_URL=https://hooks.example.com/x
)";
} // namespace

TEST_CASE("dotenv: comments - quotes - export prefix and blanks around '='") {
    auto v = dotenv::parse("# comment\n\nexport A = 1\nB=\"two words\" # note\nC='lit\\n'\n"
                           "D=plain # trailing\nE=\"esc\\\"aped\"\nF=\n",
                           "x.env");
    CHECK(v.at("A") == "1");
    CHECK(v.at("B") == "two words");
    CHECK(v.at("C") == "lit\\n");
    CHECK(v.at("D") == "plain");
    CHECK(v.at("E") == "esc\"aped");
    CHECK(v.at("F") == "");
}

TEST_CASE("dotenv: a malformed line names the file and line") {
    CHECK_THROWS_WITH_AS(dotenv::parse("A=1\nnot a pair\n", "my.env"),
                         "my.env:2: expected KEY=value", ConfigError);
    CHECK_THROWS_WITH_AS(dotenv::parse("A=\"open\n", "my.env"),
                         doctest::Contains("my.env:1: unterminated quote"), ConfigError);
}

TEST_CASE("config: the old tool's .env loads unchanged") {
    auto path = write_temp("old.env", old_tool_env);
    auto s = config::load_settings(path, {});
    CHECK(s.source.host == "src.example.com");
    CHECK(s.source.port == "5433");
    CHECK(s.source.user == "reader");
    CHECK(s.source.password == "s3cret");
    CHECK(s.source.read_only);
    CHECK_FALSE(s.dest.read_only);
    CHECK(s.dest.dbname == "warehouse");
    CHECK(s.source_schema == "public");
    CHECK(s.dest_schema == "public");
    CHECK(s.pipeline_name == "app-public");
    CHECK(s.webhook.url == "https://hooks.example.com/x");
}

TEST_CASE("config: defaults") {
    auto path = write_temp("min.env", "SOURCE_HOST=a\nSOURCE_DB=b\nSOURCE_USERNAME=c\n"
                                      "SOURCE_SCHEMA=sales\nDEST_HOST=d\nDEST_DB=e\n"
                                      "DEST_USERNAME=f\n");
    auto s = config::load_settings(path, {});
    CHECK(s.source.port == "5432");
    CHECK(s.dest.port == "5432");
    CHECK(s.dest_schema == "sales");
    CHECK(s.pipeline_name == std::filesystem::current_path().filename().string());
    CHECK(s.webhook.url.empty());
    CHECK(s.webhook.timeout_seconds == 10);
    CHECK(s.webhook.attempts == 3);
    CHECK(s.fallback_lookback_seconds == 900);
    CHECK(s.source.password.empty());
}

TEST_CASE("config: the environment overrides .env") {
    auto path = write_temp("over.env", old_tool_env);
    auto s = config::load_settings(path, {{"SOURCE_HOST", "override"}, {"DEST_SCHEMA", "dw"}});
    CHECK(s.source.host == "override");
    CHECK(s.dest_schema == "dw");
}

TEST_CASE("config: a missing key - an unknown key and a bad number name the file and key") {
    auto missing = write_temp("missing.env", "SOURCE_HOST=a\n");
    CHECK_THROWS_WITH_AS(config::load_settings(missing, {}),
                         doctest::Contains("missing.env: SOURCE_DB is missing"), ConfigError);
    auto typo = write_temp("typo.env", std::string(old_tool_env) + "SOURCE_PASWORD=x\n");
    CHECK_THROWS_WITH_AS(config::load_settings(typo, {}),
                         doctest::Contains("typo.env: unknown key SOURCE_PASWORD"), ConfigError);
    auto port = write_temp("port.env", std::string(old_tool_env) + "DEST_PORT=54x\n");
    CHECK_THROWS_WITH_AS(config::load_settings(port, {}), doctest::Contains("DEST_PORT"),
                         ConfigError);
    CHECK_THROWS_WITH_AS(config::load_settings("/nonexistent/.env", {}),
                         doctest::Contains("/nonexistent/.env: file not found"), ConfigError);
}

TEST_CASE("config: PGINCR_LOAD_VIA is copy by default - pg_dump on request - else an error") {
    auto path = write_temp("via.env", old_tool_env);
    CHECK(config::load_settings(path, {}).load_via == config::LoadVia::copy);
    CHECK(config::load_settings(path, {{"PGINCR_LOAD_VIA", "pg_dump"}}).load_via ==
          config::LoadVia::pg_dump);
    auto bad = write_temp("via-bad.env", std::string(old_tool_env) + "PGINCR_LOAD_VIA=dump\n");
    CHECK_THROWS_WITH_AS(config::load_settings(bad, {}),
                         doctest::Contains("via-bad.env: PGINCR_LOAD_VIA must be copy or pg_dump"),
                         ConfigError);
}

TEST_CASE("tables-config: the old tool's array loads unchanged") {
    auto t = config::parse_tables(
        R"([{"name": "orders", "replication_key": "updated_at", "unique_cols": ["id"]},
            {"name": "order_items", "replication_key": "updated_at", "unique_cols": ["order_id", "line"]}])",
        "tables-config.json");
    REQUIRE(t.size() == 2);
    CHECK(t[0].name == "orders");
    CHECK(t[0].destination == "orders");
    CHECK(t[0].replication_key == "updated_at");
    CHECK(t[0].unique_cols == std::vector<std::string>{"id"});
    CHECK(t[0].mode == config::Mode::incremental_deduped);
    CHECK(t[0].indexes == config::Indexes::unique);
    CHECK(t[0].lookback_seconds == 0);
    CHECK_FALSE(t[0].filter);
    CHECK(t[1].unique_cols == std::vector<std::string>{"order_id", "line"});
    CHECK(t[1].entry == 2);
}

TEST_CASE("tables-config: unique_cols may be omitted - options parse") {
    auto t = config::parse_tables(
        R"([{"name": "a", "replication_key": "k", "mode": "incremental-append",
             "destination": "a_eu", "lookback_seconds": 30, "indexes": "all",
             "filter": {"where": "region = $1 AND n > $2", "params": ["EU", 3]}},
            {"name": "b", "mode": "full-refresh"}])",
        "t.json");
    CHECK(t[0].unique_cols.empty());
    CHECK(t[0].mode == config::Mode::incremental_append);
    CHECK(t[0].destination == "a_eu");
    CHECK(t[0].lookback_seconds == 30);
    CHECK(t[0].indexes == config::Indexes::all);
    REQUIRE(t[0].filter);
    CHECK(t[0].filter->params == std::vector<std::string>{"EU", "3"});
    CHECK(t[1].replication_key.empty());
}

namespace {
// The error parse_tables() gives for `text`, or "no error".
std::string bad(const std::string &text) {
    try {
        config::parse_tables(text, "tables-config.json");
    } catch (const ConfigError &e) {
        return std::string(e.what());
    }
    return std::string("no error");
}
} // namespace

TEST_CASE("tables-config: bad input names the file - the entry and the key") {
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "unique_cols": []}])"),
              "tables-config.json: entry 1 (\"o\"): key \"unique_cols\""));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "uniq": ["id"]}])"),
              "entry 1 (\"o\"): unknown key \"uniq\""));
    CHECK(has(bad(R"([{"name": "o", "replication_key": 5}])"),
              "key \"replication_key\": expected a string, got number"));
    CHECK(has(bad(R"([{"name": "o"}])"), "key \"replication_key\": is missing"));
    CHECK(has(bad(R"([{"replication_key": "u"}])"), "entry 1: key \"name\""));
    CHECK(has(
        bad(R"([{"name": "o", "replication_key": "u"}, {"name": "o", "replication_key": "u"}])"),
        "entry 2 (\"o\"): destination table \"o\" is already used"));
    CHECK(has(bad(R"({"name": "o"})"), "expected a JSON array"));
    CHECK(has(bad(R"([])"), "empty"));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "mode": "merge"}])"),
              "key \"mode\": 'merge' is not one of"));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "lookback_seconds": -1}])"),
              "key \"lookback_seconds\""));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "indexes": "some"}])"),
              "key \"indexes\""));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "filter": {"where": ""}}])"),
              "key \"filter\""));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "unique_cols": ["id", "id"]}])"),
              "listed twice"));
}

TEST_CASE(
    "tables-config: deletes are ignored by default - hard and soft parse with their options") {
    auto t = config::parse_tables(
        R"([{"name": "a", "replication_key": "k"},
            {"name": "b", "replication_key": "k", "deletes": "hard", "delete_check_seconds": 3600,
             "max_delete_fraction": 0.5},
            {"name": "c", "replication_key": "k", "deletes": "soft"},
            {"name": "d", "mode": "full-refresh", "deletes": "hard"}])",
        "t.json");
    CHECK(t[0].deletes == config::Deletes::ignore);
    CHECK(t[0].delete_check_seconds == 0);
    CHECK(t[0].max_delete_fraction == doctest::Approx(0.1));
    CHECK(t[1].deletes == config::Deletes::hard);
    CHECK(t[1].delete_check_seconds == 3600);
    CHECK(t[1].max_delete_fraction == doctest::Approx(0.5));
    CHECK(t[2].deletes == config::Deletes::soft);
    CHECK(t[3].deletes == config::Deletes::hard);
    // Soft deletes add a column, so they are part of what a destination was loaded
    // under; hard deletes are not, and a plain entry keeps its empty signature.
    CHECK(config::options_signature(t[0]).empty());
    CHECK(config::options_signature(t[1]).empty());
    CHECK_FALSE(config::options_signature(t[2]).empty());
}

TEST_CASE("tables-config: deletes that make no sense for the mode are refused, naming the key") {
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "deletes": "yes"}])"),
              "entry 1 (\"o\"): key \"deletes\": \"yes\" is not one of"));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "mode": "incremental-append",
                       "deletes": "hard"}])"),
              "incremental-append keeps every version"));
    CHECK(has(bad(R"([{"name": "o", "mode": "full-refresh", "deletes": "soft"}])"),
              "full-refresh already drops deleted rows"));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "delete_check_seconds": 60}])"),
              "key \"delete_check_seconds\": only applies with \"deletes\""));
    CHECK(has(bad(R"([{"name": "o", "mode": "full-refresh", "deletes": "hard",
                       "max_delete_fraction": 0.5}])"),
              "key \"max_delete_fraction\": only applies to incremental-deduped"));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "deletes": "hard",
                       "max_delete_fraction": 0}])"),
              "key \"max_delete_fraction\": expected a number above 0"));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "deletes": "hard",
                       "delete_check_seconds": 1.5}])"),
              "key \"delete_check_seconds\": expected a whole number"));
}

TEST_CASE("tables-config: conflict policies parse, default to source_wins, and are refused where "
          "they make no sense") {
    auto t = config::parse_tables(R"([{"name": "a", "replication_key": "u"},
        {"name": "b", "replication_key": "u", "conflict": "newest_wins"},
        {"name": "c", "replication_key": "u", "conflict": "newest_wins",
         "conflict_column": "changed_at"},
        {"name": "d", "replication_key": "u", "conflict": "target_wins"},
        {"name": "e", "replication_key": "u", "conflict": "manual", "deletes": "hard"},
        {"name": "f", "replication_key": "u", "conflict": "source_wins"}])",
                                  "t.json");
    REQUIRE(t.size() == 6);
    CHECK(t[0].conflict == config::Conflict::source_wins);
    CHECK(t[0].conflict_column.empty());
    CHECK(t[1].conflict == config::Conflict::newest_wins);
    CHECK(t[1].conflict_column.empty());
    CHECK(t[2].conflict_column == "changed_at");
    CHECK(t[3].conflict == config::Conflict::target_wins);
    CHECK(t[4].conflict == config::Conflict::manual);
    CHECK(t[5].conflict == config::Conflict::source_wins);
    CHECK(std::string(config::conflict_name(config::Conflict::manual)) == "manual");
    // A policy does not change the rows a load makes: no reload when it changes.
    CHECK(config::options_signature(t[3]) == "");

    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "conflict": "mine"}])"),
              "entry 1 (\"o\"): key \"conflict\": \"mine\" is not one of \"source_wins\""));
    CHECK(has(bad(R"([{"name": "o", "mode": "cdc", "conflict": "target_wins"}])"),
              "\"target_wins\" and \"manual\" are not supported for cdc entries yet"));
    // cdc has no replication_key: newest_wins names its column.
    CHECK(has(bad(R"([{"name": "o", "mode": "cdc", "conflict": "newest_wins"}])"),
              "key \"conflict\": a cdc entry has no replication_key to compare"));
    auto cdc = config::parse_tables(R"([{"name": "o", "mode": "cdc", "conflict": "newest_wins",
                                          "conflict_column": "changed_at"}])",
                                    "t.json");
    CHECK(cdc[0].conflict == config::Conflict::newest_wins);
    CHECK(cdc[0].conflict_column == "changed_at");
    CHECK(has(bad(R"([{"name": "o", "mode": "full-refresh", "conflict": "target_wins"}])"),
              "key \"conflict\": only incremental-deduped entries"));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "mode": "incremental-append",
                       "conflict": "manual"}])"),
              "key \"conflict\": only incremental-deduped entries"));
    // The default is fine everywhere.
    CHECK_NOTHROW(config::parse_tables(
        R"([{"name": "o", "mode": "cdc", "conflict": "source_wins"}])", "t.json"));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "conflict_column": "x"}])"),
              "key \"conflict_column\": only applies with \"conflict\": \"newest_wins\""));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "conflict": "newest_wins",
                       "conflict_column": 3}])"),
              "key \"conflict_column\": expected the name of a column"));
    std::string long_name(49, 'x');
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "conflict": "target_wins",
                       "destination": ")" +
                  long_name + R"("}])"),
              "set a \"destination\" of at most 48 bytes"));
    CHECK_NOTHROW(config::parse_tables(R"([{"name": "o", "replication_key": "u",
        "conflict": "manual", "destination": ")" +
                                           std::string(48, 'x') + R"("}])",
                                       "t.json"));
}

TEST_CASE("tables-config: invalid JSON reports line and column") {
    try {
        config::parse_tables("[\n  {\"name\": \"o\",\n   \"replication_key\" \"u\"}\n]", "t.json");
        FAIL("no error");
    } catch (const ConfigError &e) {
        CHECK(has(e.what(), "t.json: invalid JSON at line 3, column"));
    }
}

TEST_CASE("config: TLS settings per side - libpq's environment stays the default") {
    auto path = write_temp("tls.env", std::string(old_tool_env) +
                                          "SOURCE_SSLMODE=verify-full\n"
                                          "SOURCE_SSLROOTCERT=/etc/ssl/provider-ca.pem\n"
                                          "DEST_SSLMODE=disable\n");
    auto s = config::load_settings(path, {});
    CHECK(s.source.sslmode == "verify-full");
    CHECK(s.source.sslrootcert == "/etc/ssl/provider-ca.pem");
    CHECK(s.source.sslcert.empty());
    CHECK(s.dest.sslmode == "disable");
    CHECK(s.dest.sslrootcert.empty());
    // Unset: nothing is passed, so PGSSLMODE ... still apply to both sides.
    auto plain = config::load_settings(write_temp("notls.env", old_tool_env), {});
    CHECK(plain.source.sslmode.empty());
    CHECK(plain.dest.sslmode.empty());
    auto bad = write_temp("badtls.env", std::string(old_tool_env) + "DEST_SSLMODE=verify\n");
    CHECK_THROWS_WITH_AS(config::load_settings(bad, {}),
                         doctest::Contains("DEST_SSLMODE must be one of"), ConfigError);
}

TEST_CASE("config: pgincr's sessions are pinned - lock timeout default and range") {
    auto s = config::load_settings(write_temp("pin.env", old_tool_env), {});
    CHECK(s.source.pinned);
    CHECK(s.dest.pinned);
    CHECK(s.lock_timeout_seconds == 300);
    CHECK(s.dest.lock_timeout_seconds == 300);
    auto t = config::load_settings(write_temp("pin.env", old_tool_env),
                                   {{"PGINCR_LOCK_TIMEOUT_SECONDS", "20"}});
    CHECK(t.source.lock_timeout_seconds == 20);
    CHECK(t.dest.lock_timeout_seconds == 20);
    CHECK_THROWS_WITH_AS(config::load_settings(write_temp("pin.env", old_tool_env),
                                               {{"PGINCR_LOCK_TIMEOUT_SECONDS", "0"}}),
                         doctest::Contains("PGINCR_LOCK_TIMEOUT_SECONDS"), ConfigError);
}

TEST_CASE("config: SOURCE_PRIMARY_HOST takes the source's database, port, role and TLS") {
    auto path = write_temp("primary.env", std::string(old_tool_env) +
                                              "SOURCE_SSLMODE=require\n"
                                              "SOURCE_PRIMARY_HOST=primary.example.com\n");
    auto s = config::load_settings(path, {});
    REQUIRE(s.source_primary);
    CHECK(s.source_primary->host == "primary.example.com");
    CHECK(s.source_primary->port == "5433");
    CHECK(s.source_primary->dbname == "app");
    CHECK(s.source_primary->user == "reader");
    CHECK(s.source_primary->password == "s3cret");
    CHECK(s.source_primary->sslmode == "require");
    CHECK(s.source_primary->read_only);
    auto own = config::load_settings(
        path, {{"SOURCE_PRIMARY_PORT", "6432"}, {"SOURCE_PRIMARY_USERNAME", "monitor"}});
    CHECK(own.source_primary->port == "6432");
    CHECK(own.source_primary->user == "monitor");
    CHECK_FALSE(
        config::load_settings(write_temp("noprimary.env", old_tool_env), {}).source_primary);
    CHECK_THROWS_WITH_AS(config::load_settings(write_temp("noprimary.env", old_tool_env),
                                               {{"SOURCE_PRIMARY_PORT", "6432"}}),
                         doctest::Contains("SOURCE_PRIMARY_HOST is not"), ConfigError);
}

TEST_CASE("tables-config: cdc entries need no replication_key, and options that make no sense "
          "for a stream are refused") {
    auto t = config::parse_tables(R"([{"name": "o", "mode": "cdc"},
                                      {"name": "p", "mode": "cdc", "replication_key": "u",
                                       "unique_cols": ["a", "b"], "destination": "p2"},
                                      {"name": "q", "replication_key": "u"}])",
                                  "t.json");
    REQUIRE(t.size() == 3);
    CHECK(t[0].mode == config::Mode::cdc);
    CHECK(t[0].replication_key.empty());
    CHECK(t[1].replication_key.empty()); // a cursor plays no part in a stream
    CHECK(t[1].unique_cols == std::vector<std::string>{"a", "b"});
    CHECK(config::any_cdc(t));
    CHECK_FALSE(config::any_cdc({t[2]}));
    // Switching an entry to or from cdc reloads it.
    CHECK(config::options_signature(t[0]) != config::options_signature(t[2]));
    CHECK(has(bad(R"([{"name": "o", "mode": "cdc", "filter": {"where": "x > 1"}}])"),
              "key \"filter\": a cdc entry streams every change"));
    CHECK(has(bad(R"([{"name": "o", "mode": "cdc", "deletes": "hard"}])"),
              "key \"deletes\": a cdc entry applies the source's deletes"));
    CHECK(has(bad(R"([{"name": "o", "mode": "cdc", "lookback_seconds": 5}])"),
              "key \"lookback_seconds\": a cdc entry reads no cursor"));
    CHECK(has(bad(R"([{"name": "o", "mode": "cdc"}, {"name": "o", "mode": "cdc",
                       "destination": "o2"}])"),
              "entry 2 (\"o\"): key \"name\": source table \"o\" is already streamed"));
    CHECK(
        has(bad(R"([{"name": "o", "mode": "stream"}])"), "incremental-append, full-refresh, cdc"));
}

TEST_CASE("config: the cdc slot and publication are named after PIPELINE_NAME unless set") {
    auto path = write_temp("slot.env", old_tool_env);
    auto s = config::load_settings(path, {});
    CHECK(s.slot == "pgincr_app_public");
    CHECK(s.publication == "pgincr_app_public");
    auto set = config::load_settings(
        path, {{"PGINCR_SLOT", "my_slot"}, {"PGINCR_PUBLICATION", "My Publication"}});
    CHECK(set.slot == "my_slot");
    CHECK(set.publication == "My Publication");
    CHECK(config::default_slot_name("Sales-DB.eu") == "pgincr_sales_db_eu");
    CHECK(config::default_slot_name(std::string(100, 'x')).size() == 63);
    CHECK_THROWS_WITH_AS(config::load_settings(path, {{"PGINCR_SLOT", "Bad-Slot"}}),
                         doctest::Contains("slot.env: PGINCR_SLOT 'Bad-Slot' is not a valid "
                                           "replication slot name"),
                         ConfigError);
}

TEST_CASE("config: lag alerts are off by default - LAG_ALERT_SECONDS and the repeat interval "
          "parse - bad values name the key") {
    auto path = write_temp("lag.env", old_tool_env);
    auto s = config::load_settings(path, {});
    CHECK_FALSE(s.lag_alert_seconds);
    CHECK(s.lag_alert_repeat_seconds == 3600);
    s = config::load_settings(path,
                              {{"LAG_ALERT_SECONDS", "2.5"}, {"LAG_ALERT_REPEAT_SECONDS", "60"}});
    REQUIRE(s.lag_alert_seconds);
    CHECK(*s.lag_alert_seconds == 2.5);
    CHECK(s.lag_alert_repeat_seconds == 60);
    for (const auto &[key, value] :
         std::vector<std::pair<std::string, std::string>>{{"LAG_ALERT_SECONDS", "0"},
                                                          {"LAG_ALERT_SECONDS", "-5"},
                                                          {"LAG_ALERT_SECONDS", "5m"},
                                                          {"LAG_ALERT_REPEAT_SECONDS", "0"},
                                                          {"LAG_ALERT_REPEAT_SECONDS", "soon"}}) {
        auto bad_env =
            write_temp("lag-bad.env", std::string(old_tool_env) + key + "=" + value + "\n");
        std::string expected = "lag-bad.env: " + key + " must be a number of seconds above 0";
        CHECK_THROWS_WITH_AS(config::load_settings(bad_env, {}),
                             doctest::Contains(expected.c_str()), ConfigError);
    }
}

TEST_CASE("tables-config: lag_alert_seconds overrides the pipeline's threshold - bad values name "
          "the entry and key") {
    auto t = config::parse_tables(
        R"([{"name": "a", "replication_key": "k", "lag_alert_seconds": 2},
            {"name": "b", "replication_key": "k"},
            {"name": "c", "mode": "cdc", "lag_alert_seconds": 0.5}])",
        "t.json");
    CHECK(t[0].lag_alert_seconds == 2.0);
    CHECK_FALSE(t[1].lag_alert_seconds);
    CHECK(t[2].lag_alert_seconds == 0.5);
    config::Settings s;
    CHECK_FALSE(config::lag_alert_threshold(s, t[1]));
    CHECK(config::lag_alert_threshold(s, t[0]) == 2.0);
    s.lag_alert_seconds = 600;
    CHECK(config::lag_alert_threshold(s, t[0]) == 2.0);
    CHECK(config::lag_alert_threshold(s, t[1]) == 600.0);
    // Changing a threshold never reloads a table.
    CHECK(config::options_signature(t[0]) == config::options_signature(t[1]));

    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "lag_alert_seconds": 0}])"),
              "tables-config.json: entry 1 (\"o\"): key \"lag_alert_seconds\": expected a number "
              "of seconds above 0"));
    CHECK(has(bad(R"([{"name": "o", "replication_key": "u", "lag_alert_seconds": "60"}])"),
              "key \"lag_alert_seconds\": expected a number"));
    CHECK(has(bad(R"([{"name": "o", "mode": "full-refresh", "lag_alert_seconds": 60}])"),
              "key \"lag_alert_seconds\": a full-refresh entry without \"replication_key\""));
}
