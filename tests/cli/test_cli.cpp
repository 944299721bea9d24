// The command line a user meets first: configuration errors, secrets in output, and
// what `pgincr check` reports.
#include "support/pipeline.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

using namespace pgincr;
using namespace pgincr::test;

namespace {

const char *orders_config =
    R"([{"name": "orders", "replication_key": "updated_at", "unique_cols": ["id"]}])";

void seed_orders(Pipeline &p) {
    p.src().exec("CREATE TABLE orders (id bigint PRIMARY KEY, v int, "
                 "updated_at timestamptz NOT NULL DEFAULT now())");
    p.src().exec("CREATE INDEX ON orders (updated_at)");
    p.src().exec("INSERT INTO orders (id, v) SELECT g, g FROM generate_series(1, 100) g");
    p.tables(orders_config);
}

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

// Exit 2, a message naming `file` and `key`, and nothing created in the destination.
void require_config_error(Pipeline &p, const std::vector<std::string> &args,
                          const std::string &file, const std::string &key) {
    auto r = p.run(args);
    INFO(r.all());
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, file));
    CHECK(contains(r.err, key));
    CHECK(scalar(p.dst(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'replica'") == "0");
    CHECK_FALSE(std::filesystem::exists(p.dir.path() / "sync-state" / "orders.json"));
}

std::string env_text(const Pipeline &p) {
    return p.dir.read(".env");
}

std::string replace_line(std::string text, const std::string &key, const std::string &line) {
    auto at = text.find(key + "=");
    REQUIRE(at != std::string::npos);
    auto end = text.find('\n', at);
    return text.replace(at, end - at, line);
}

} // namespace

TEST_CASE("cli: a bad .env stops the run with exit 2 naming the file and the key") {
    Pipeline p("cli_bad_env");
    seed_orders(p);
    const auto good = env_text(p);

    SUBCASE("missing key") {
        p.dir.write(".env", replace_line(good, "SOURCE_HOST", "# no host"));
        require_config_error(p, {"sync"}, ".env", "SOURCE_HOST");
    }
    SUBCASE("port that is not a number") {
        p.dir.write(".env", replace_line(good, "DEST_PORT", "DEST_PORT=54x2"));
        require_config_error(p, {"sync"}, ".env", "DEST_PORT");
    }
    SUBCASE("misspelt key") {
        p.dir.write(".env", good + "WEBHOOK_TIMEOUT_SECOND=5\n");
        require_config_error(p, {"sync"}, ".env", "WEBHOOK_TIMEOUT_SECOND");
    }
    SUBCASE("malformed line") {
        p.dir.write(".env", good + "this line has no equals sign\n");
        require_config_error(p, {"sync"}, ".env:", "expected KEY=value");
    }
    SUBCASE("--env names a file that does not exist and the keys are missing") {
        require_config_error(p, {"sync", "--env", "nowhere.env"}, "nowhere.env", "SOURCE_HOST");
    }
}

TEST_CASE("cli: a bad tables-config.json stops the run with exit 2 naming the entry and the key") {
    Pipeline p("cli_bad_tables");
    seed_orders(p);

    SUBCASE("invalid JSON") {
        p.tables("[{\"name\": \"orders\",\n \"replication_key\": }]");
        require_config_error(p, {"sync"}, "tables-config.json", "line 2");
    }
    SUBCASE("missing name") {
        p.tables(R"([{"replication_key": "updated_at"}])");
        require_config_error(p, {"sync"}, "tables-config.json", "name");
    }
    SUBCASE("wrong type for unique_cols, in the second entry") {
        p.tables(R"([{"name": "orders", "replication_key": "updated_at"},
                     {"name": "orders", "destination": "o2", "replication_key": "updated_at",
                      "unique_cols": "id"}])");
        require_config_error(p, {"sync"}, "entry 2", "unique_cols");
    }
    SUBCASE("not an array") {
        p.tables(R"({"name": "orders"})");
        require_config_error(p, {"sync"}, "tables-config.json", "array");
    }
    SUBCASE("missing file") {
        std::filesystem::remove(p.dir.path() / "tables-config.json");
        require_config_error(p, {"sync"}, "tables-config.json", "tables-config.json");
    }
    SUBCASE("--table that is not configured") {
        require_config_error(p, {"sync", "--table", "nosuch"}, "tables-config.json", "nosuch");
    }
}

TEST_CASE("cli: usage errors exit 2 and --help exits 0") {
    Pipeline p("cli_usage");
    CHECK(p.run({}).exit_code == 2);
    CHECK(p.run({"frobnicate"}).exit_code == 2);
    CHECK(p.run({"sync", "--no-such-flag"}).exit_code == 2);
    CHECK(p.run({"reset"}).exit_code == 2);
    auto help = p.run({"--help"});
    CHECK(help.exit_code == 0);
    CHECK(contains(help.out, "Exit codes"));
}

TEST_CASE("cli: no password appears in any output - in argv of pg_dump or in the webhook") {
    const std::string wrong = "Wr0ng-Passw0rd-Never-Printed";
    Pipeline p("cli_secrets");
    seed_orders(p);
    const auto good = env_text(p);
    const auto real = env_or_fail("PGINCR_TEST_PASSWORD");

    SUBCASE("a failed login, through sync and check") {
        p.dir.write(".env", replace_line(good, "SOURCE_PASSWORD", "SOURCE_PASSWORD=" + wrong));
        auto sync = p.run({"sync", "-v"});
        INFO(sync.all());
        CHECK(sync.exit_code == 1);
        CHECK(contains(sync.err, "password authentication failed"));
        auto check = p.run({"check", "-v"});
        INFO(check.all());
        CHECK(check.exit_code == 1);
        for (const auto *r : {&sync, &check}) {
            CHECK_FALSE(contains(r->all(), wrong));
            CHECK_FALSE(contains(r->all(), real));
        }
    }
    SUBCASE("a successful verbose run, its state files and pg_dump's command line") {
        // A pg_dump that records its argv and whether it got the password from the
        // environment, then does the real work.
        p.dir.write("recording_pg_dump", "#!/bin/sh\n"
                                         "printf '%s\\n' \"$@\" > \"$0.argv\"\n"
                                         "[ -n \"$PGPASSWORD\" ] && echo yes > \"$0.env\"\n"
                                         "exec pg_dump \"$@\"\n");
        auto fake = p.dir.path() / "recording_pg_dump";
        std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
        auto r = p.run({"sync", "-v"},
                       {{"PGINCR_PG_DUMP", fake.string()}, {"PGINCR_LOAD_VIA", "pg_dump"}});
        INFO(r.all());
        REQUIRE(r.exit_code == 0);
        CHECK(p.equal("orders"));
        CHECK_FALSE(contains(r.all(), real));
        auto argv = p.dir.read("recording_pg_dump.argv");
        CHECK(contains(argv, "--snapshot"));
        CHECK_FALSE(contains(argv, real));
        CHECK(p.dir.read("recording_pg_dump.env") == "yes\n");
        CHECK_FALSE(contains(p.dir.read("sync-state/orders.json"), real));
        auto status = p.run({"status", "--json"});
        CHECK_FALSE(contains(status.all(), real));
    }
}

TEST_CASE("check: a ready setup exits 0 and says what the next sync does") {
    Pipeline p("check_ready");
    seed_orders(p);
    auto r = p.run({"check"});
    INFO(r.all());
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "source: ok"));
    CHECK(contains(r.out, "dest: ok"));
    CHECK(contains(r.out, "orders: ok, next sync: initial load"));
    REQUIRE_SYNC(p, 0);
    r = p.run({"check"});
    CHECK(contains(r.out, "orders: ok, next sync: incremental"));
    // check only reads: the destination is as the sync left it, the source untouched.
    CHECK(p.equal("orders"));
}

TEST_CASE("check: warns about a missing key index - NULL keys - a writable role - no stats grant") {
    Pipeline p("check_warnings");
    p.src().exec("CREATE TABLE events (id int PRIMARY KEY, updated_at timestamptz)");
    p.src().exec("INSERT INTO events VALUES (1, now()), (2, NULL)");
    p.tables(R"([{"name": "events", "replication_key": "updated_at", "unique_cols": ["id"]}])");

    auto r = p.run({"check"});
    INFO(r.all());
    CHECK(r.exit_code == 0); // warnings do not block
    CHECK(contains(r.out, "no index on replication_key \"updated_at\""));
    CHECK(contains(r.out, "rows with a NULL \"updated_at\" exist"));
    CHECK(contains(r.out, "can write to this table"));

    // A read-only role without pg_read_all_stats: no write warning, a stats warning.
    p.src().exec(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgincr_plain') "
        "THEN CREATE ROLE pgincr_plain LOGIN PASSWORD 'plain-secret'; END IF; END $$");
    p.src().exec(fmt::format("GRANT CONNECT ON DATABASE {} TO pgincr_plain",
                             p.src().quote_ident(p.dbs.name())));
    p.src().exec("GRANT USAGE ON SCHEMA public TO pgincr_plain");
    p.src().exec("GRANT SELECT ON events TO pgincr_plain");
    auto env = replace_line(env_text(p), "SOURCE_USERNAME", "SOURCE_USERNAME=pgincr_plain");
    p.dir.write(".env", replace_line(env, "SOURCE_PASSWORD", "SOURCE_PASSWORD=plain-secret"));
    r = p.run({"check"});
    INFO(r.all());
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "cannot see other roles' transactions"));
    CHECK(contains(r.out, "GRANT pg_read_all_stats"));
    CHECK_FALSE(contains(r.out, "can write to this table"));
    CHECK_FALSE(contains(r.all(), "plain-secret"));
    // sync says it too, and still works.
    auto s = p.sync();
    INFO(s.all());
    CHECK(s.exit_code == 0);
    CHECK(contains(s.err, "pg_read_all_stats"));
}

TEST_CASE("check: blocking problems exit 1 and name the table and the column") {
    Pipeline p("check_errors");
    p.src().exec("CREATE TABLE good (id int PRIMARY KEY, updated_at timestamptz NOT NULL)");
    p.src().exec("CREATE INDEX ON good (updated_at)");
    p.src().exec("CREATE TABLE textkey (id int PRIMARY KEY, updated_at text)");
    p.src().exec("CREATE TABLE nokey (id int PRIMARY KEY, updated_at timestamptz)");
    p.src().exec("CREATE TABLE nounique (v int, updated_at timestamptz)");
    p.src().exec("CREATE VIEW aview AS SELECT * FROM good");
    p.tables(R"([{"name": "good", "replication_key": "updated_at"},
                 {"name": "missing", "replication_key": "updated_at"},
                 {"name": "textkey", "replication_key": "updated_at"},
                 {"name": "nokey", "replication_key": "changed_at"},
                 {"name": "nounique", "replication_key": "updated_at"},
                 {"name": "aview", "replication_key": "updated_at", "destination": "v"}])");
    auto r = p.run({"check"});
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(contains(r.out, "good: ok"));
    CHECK(contains(r.out, "missing: ERROR"));
    CHECK(contains(r.out, "textkey: ERROR"));
    CHECK(contains(r.out, "\"updated_at\""));
    CHECK(contains(r.out, "nokey: ERROR"));
    CHECK(contains(r.out, "changed_at"));
    CHECK(contains(r.out, "nounique: ERROR"));
    CHECK(contains(r.out, "aview -> v: ERROR"));

    // The same tables in a sync: each fails on its own and the good one still syncs.
    auto s = p.sync();
    INFO(s.all());
    CHECK(s.exit_code == 1);
    CHECK(p.equal("good"));
    for (const auto *t : {"missing", "textkey", "nokey", "nounique", "v"})
        CHECK(contains(s.err, fmt::format("[{}]", t)));
}

TEST_CASE("check: a destination role that cannot create the schema is a blocking problem") {
    Pipeline p("check_dest_role");
    seed_orders(p);
    p.dst().exec("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgincr_weak') "
                 "THEN CREATE ROLE pgincr_weak LOGIN PASSWORD 'weak-secret'; END IF; END $$");
    p.dst().exec(
        fmt::format("REVOKE CREATE ON DATABASE {} FROM PUBLIC", p.dst().quote_ident(p.dbs.name())));
    auto env = replace_line(env_text(p), "DEST_USERNAME", "DEST_USERNAME=pgincr_weak");
    p.dir.write(".env", replace_line(env, "DEST_PASSWORD", "DEST_PASSWORD=weak-secret"));
    auto r = p.run({"check"});
    INFO(r.all());
    CHECK(r.exit_code == 1);
    CHECK(contains(r.out, "cannot create tables in database"));
}

TEST_CASE("cli: the README's roles and grants are enough to check and sync") {
    Pipeline p("cli_readme_grants", "public", "app");
    seed_orders(p);
    // An identity column: pg_dump reads the sequence the table owns.
    p.src().exec("CREATE TABLE tickets (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                 "updated_at timestamptz NOT NULL DEFAULT now())");
    p.src().exec("INSERT INTO tickets DEFAULT VALUES");
    p.tables(R"([{"name": "orders", "replication_key": "updated_at"},
                 {"name": "tickets", "replication_key": "updated_at"}])");
    auto readme = read_text(source_dir() / "README.md");
    std::vector<std::string> blocks;
    for (auto at = readme.find("```sql\n"); at != std::string::npos;
         at = readme.find("```sql\n", at)) {
        at += 7;
        blocks.push_back(readme.substr(at, readme.find("```", at) - at));
    }
    REQUIRE(blocks.size() >= 2);

    // Runs a block as written, except the password placeholder, and roles left by an
    // earlier run on the same servers are updated rather than created.
    auto run_block = [](pg::Connection &conn, const std::string &block, const std::string &pw) {
        std::size_t start = 0;
        for (auto end = block.find(';'); end != std::string::npos;
             start = end + 1, end = block.find(';', start)) {
            auto stmt = block.substr(start, end - start);
            stmt.erase(0, stmt.find_first_not_of(" \n"));
            auto placeholder = stmt.find("'...'");
            if (placeholder != std::string::npos)
                stmt.replace(placeholder, 5, "'" + pw + "'");
            if (stmt.rfind("CREATE ROLE ", 0) == 0) {
                auto alter = "ALTER" + stmt.substr(6);
                stmt = fmt::format(
                    "DO $$ BEGIN {}; EXCEPTION WHEN duplicate_object THEN {}; END $$", stmt, alter);
            }
            INFO(stmt);
            conn.exec(stmt);
        }
    };
    run_block(p.src(), blocks[0], "reader-pw-1");
    run_block(p.dst(), blocks[1], "writer-pw-2");
    p.src().exec(fmt::format("GRANT CONNECT ON DATABASE {} TO pgincr_reader",
                             p.src().quote_ident(p.dbs.name())));

    auto env = env_text(p);
    env = replace_line(env, "SOURCE_USERNAME", "SOURCE_USERNAME=pgincr_reader");
    env = replace_line(env, "SOURCE_PASSWORD", "SOURCE_PASSWORD=reader-pw-1");
    env = replace_line(env, "DEST_USERNAME", "DEST_USERNAME=pgincr_writer");
    env = replace_line(env, "DEST_PASSWORD", "DEST_PASSWORD=writer-pw-2");
    p.dir.write(".env", env);
    CHECK(scalar(p.dst(), "SELECT has_database_privilege('pgincr_writer', current_database(), "
                          "'CREATE')") == "f");

    auto c = p.run({"check"});
    INFO(c.all());
    CHECK(c.exit_code == 0);
    CHECK_FALSE(contains(c.out, "WARNING role"));
    CHECK_FALSE(contains(c.out, "can write"));
    REQUIRE_SYNC(p, 0);
    p.src().exec("UPDATE orders SET v = -v, updated_at = now() WHERE id <= 3");
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders"));
    p.run({"reset", "orders"});
    REQUIRE_SYNC(p, 0);
    CHECK(p.equal("orders"));
    CHECK(p.equal("tickets"));

    // The pg_dump path works with these grants too.
    p.run({"reset", "orders", "tickets"});
    auto via_dump = p.sync({{"PGINCR_LOAD_VIA", "pg_dump"}});
    INFO(via_dump.all());
    CHECK(via_dump.exit_code == 0);
    CHECK(p.equal("tickets"));

    // Without the sequences grant, check names the sequence and the GRANT to run when
    // loads go through pg_dump, which reads the sequences a table owns.
    p.src().exec("REVOKE SELECT ON ALL SEQUENCES IN SCHEMA public FROM pgincr_reader");
    CHECK(p.run({"check"}).exit_code == 0);
    c = p.run({"check"}, {{"PGINCR_LOAD_VIA", "pg_dump"}});
    INFO(c.all());
    CHECK(c.exit_code == 1);
    CHECK(contains(c.out, "tickets: ERROR role \"pgincr_reader\" cannot read sequence "
                          "public.tickets_id_seq"));
    CHECK(contains(c.out, "orders: ok"));
}
