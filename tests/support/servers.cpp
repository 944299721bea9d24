#include "support/servers.hpp"

#include <boost/process.hpp>
#include <chrono>
#include <cstdlib>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace bp = boost::process;

namespace pgincr::test {

std::string env_or_fail(const char *name) {
    const char *v = std::getenv(name);
    if (!v || !*v) {
        std::string msg =
            fmt::format("{} is not set: run the suite through scripts/test, which starts the "
                        "test servers",
                        name);
        FAIL(msg);
    }
    return v;
}

pg::ConnInfo admin_info(pg::Side side, const std::string &db) {
    pg::ConnInfo info;
    info.side = side;
    info.host = env_or_fail("PGINCR_TEST_HOST");
    info.port =
        env_or_fail(side == pg::Side::source ? "PGINCR_TEST_SRC_PORT" : "PGINCR_TEST_DST_PORT");
    info.dbname = db;
    info.user = "postgres";
    info.password = env_or_fail("PGINCR_TEST_PASSWORD");
    return info;
}

std::unique_ptr<pg::Connection> admin(pg::Side side, const std::string &db) {
    return std::make_unique<pg::Connection>(admin_info(side, db));
}

pg::ConnInfo standby_info(const std::string &db) {
    auto info = admin_info(pg::Side::source, db);
    info.port = env_or_fail("PGINCR_TEST_STANDBY_PORT");
    return info;
}

void wait_for_standby(pg::Connection &primary) {
    // The insert position, not the flush position: it covers what the caller wrote but
    // did not commit synchronously; the WAL writer flushes and sends it within moments.
    // When the last record ends on a page boundary the insert position lies past the
    // next page header, beyond what replay reports, until the next record: the bgwriter
    // logs one within 15 s of any activity, well inside the timeout.
    auto target = scalar(primary, "SELECT pg_current_wal_insert_lsn()");
    pg::Connection standby(standby_info());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
        auto res = standby.exec("SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false), "
                                "pg_last_wal_replay_lsn()",
                                {target}, pg::Expect::one_row);
        if (res.boolean(0, 0))
            return;
        if (std::chrono::steady_clock::now() > deadline) {
            std::string msg = fmt::format(
                "the standby (port {}) replayed WAL only up to {} after 60 s; the primary is at "
                "{}: is it streaming? see $PGINCR_CLUSTERS/standby/server.log",
                standby.info().port, res.optional(0, 1).value_or("nothing"), target);
            FAIL(msg);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

void restart_server(const std::string &name) {
    std::string port;
    if (name == "source")
        port = env_or_fail("PGINCR_TEST_SRC_PORT");
    else if (name == "dest")
        port = env_or_fail("PGINCR_TEST_DST_PORT");
    else if (name == "standby")
        port = env_or_fail("PGINCR_TEST_STANDBY_PORT");
    else
        FAIL(fmt::format("restart_server: no server named '{}'", name));
    auto dir = std::filesystem::path(env_or_fail("PGINCR_CLUSTERS")) / name;
    auto pg_ctl = std::filesystem::path(env_or_fail("PGINCR_TEST_PG_BIN")) / "pg_ctl";
    // Without -o, pg_ctl restart reuses the options in postmaster.opts (port, socket
    // directory, -c settings). Without -l the new postmaster would write its log to
    // pg_ctl's stdout and keep it open for as long as it runs. -w waits up to 60 s.
    auto data = (dir / "data").string(), server_log = (dir / "server.log").string();
    std::vector<std::string> args = {"-D", data, "-l", server_log, "-m", "fast", "-w", "restart"};
    auto exe = pg_ctl;
    // postgres refuses to run as root: scripts/test runs the clusters as this user.
    const char *user = std::getenv("PGINCR_TEST_PG_USER");
    if (user && *user && geteuid() == 0) {
        args.insert(args.begin(), {"-u", user, "--", pg_ctl.string()});
        exe = bp::search_path("runuser").string();
    }
    auto log = dir / "restart.log";
    int rc = bp::system(exe.string(), bp::args(args), bp::start_dir(dir.string()),
                        (bp::std_out & bp::std_err) > log.string(), bp::std_in < bp::null);
    if (rc != 0) {
        std::string msg = fmt::format("restarting {} failed ({}): {}\nsee {}", name, rc,
                                      read_text(log), server_log);
        FAIL(msg);
    }
    // pg_ctl -w has waited already; this checks the port a test connects to.
    std::string target = fmt::format("host={} port={} dbname=postgres connect_timeout=5",
                                     env_or_fail("PGINCR_TEST_HOST"), port);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (PQping(target.c_str()) != PQPING_OK) {
        if (std::chrono::steady_clock::now() > deadline) {
            std::string msg = fmt::format("{} does not accept connections on port {} 60 s "
                                          "after its restart; see {}",
                                          name, port, server_log);
            FAIL(msg);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

std::string ca_cert() {
    return env_or_fail("PGINCR_TEST_CA_CERT");
}

std::string wrong_ca_cert() {
    return env_or_fail("PGINCR_TEST_WRONG_CA_CERT");
}

TestDatabases::TestDatabases(const std::string &name) : name_(name) {
    for (auto side : {pg::Side::source, pg::Side::dest}) {
        auto conn = admin(side);
        conn->exec(
            fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", conn->quote_ident(name_)));
        conn->exec(fmt::format("CREATE DATABASE {}", conn->quote_ident(name_)));
    }
    src_ = admin(pg::Side::source, name_);
    dst_ = admin(pg::Side::dest, name_);
}

TestDatabases::~TestDatabases() {
    src_.reset();
    dst_.reset();
    try {
        for (auto side : {pg::Side::source, pg::Side::dest}) {
            auto conn = admin(side);
            // A logical slot keeps its database from being dropped (and WAL from being
            // removed): a cdc test that failed before its teardown leaves one.
            conn->exec("SELECT pg_catalog.pg_terminate_backend(active_pid) FROM "
                       "pg_catalog.pg_replication_slots WHERE database = $1 AND active_pid IS "
                       "NOT NULL",
                       {name_}, pg::Expect::rows);
            for (int i = 0; i < 50; ++i) {
                auto left = conn->exec("SELECT count(pg_catalog.pg_drop_replication_slot("
                                       "slot_name)) FROM pg_catalog.pg_replication_slots WHERE "
                                       "database = $1 AND NOT active",
                                       {name_}, pg::Expect::value);
                if (scalar(*conn, fmt::format("SELECT count(*) FROM pg_replication_slots WHERE "
                                              "database = {}",
                                              conn->quote_literal(name_))) == "0")
                    break;
                (void)left;
                conn->exec("SELECT pg_catalog.pg_sleep(0.1)");
            }
            conn->exec(
                fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", conn->quote_ident(name_)));
        }
    } catch (...) {
    }
}

pg::ConnInfo TestDatabases::source_info() const {
    auto info = admin_info(pg::Side::source, name_);
    info.read_only = true;
    info.pinned = true;
    return info;
}

pg::ConnInfo TestDatabases::dest_info() const {
    auto info = admin_info(pg::Side::dest, name_);
    info.pinned = true;
    return info;
}

TableDigest digest(pg::Connection &conn, const std::string &qualified_table) {
    auto res = conn.exec(fmt::format("SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' "
                                     "ORDER BY t::text COLLATE \"C\")), '') FROM {} t",
                                     qualified_table),
                         pg::Expect::one_row);
    return {res.integer(0, 0), std::string(res.text(0, 1))};
}

SlotCleanup::~SlotCleanup() {
    try {
        admin(pg::Side::source)
            ->exec("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE "
                   "slot_name = $1",
                   {name}, pg::Expect::rows);
    } catch (...) {
    }
}

std::string scalar(pg::Connection &conn, const std::string &sql) {
    auto res = conn.exec(sql, pg::Expect::value);
    return res.is_null(0, 0) ? "" : std::string(res.text(0, 0));
}

std::filesystem::path source_dir() {
    return PGINCR_SOURCE_DIR;
}

std::string read_text(const std::filesystem::path &file) {
    std::ifstream in(file, std::ios::binary);
    INFO(file.string());
    REQUIRE(in);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

RunResult run_script(const std::string &script, const std::vector<std::string> &args,
                     const std::filesystem::path &dir, int seconds) {
    bp::environment env = boost::this_process::environment();
    env["PGINCR_BIN"] = env_or_fail("PGINCR_TEST_BIN");
    for (const char *k : {"PGPASSWORD", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS"})
        env.erase(k);
    std::vector<std::string> argv = {"--kill-after=30", std::to_string(seconds),
                                     (source_dir() / "scripts" / script).string()};
    argv.insert(argv.end(), args.begin(), args.end());
    bp::ipstream out;
    bp::child child(bp::search_path("timeout"), bp::args(argv), bp::start_dir(dir.string()),
                    (bp::std_out & bp::std_err) > out, bp::std_in < bp::null, env);
    std::ostringstream s;
    s << out.rdbuf();
    child.wait();
    RunResult r;
    r.out = s.str();
    int status = child.native_exit_code();
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return r;
}

boost::process::environment
pgincr_environment(const std::map<std::string, std::string> &extra_env) {
    auto env = boost::this_process::environment();
    bp::environment child_env = env;
    // A test must not pick up the developer's own libpq settings, nor pgincr settings
    // that the environment would let override the test's .env (scripts export
    // SOURCE_PORT and DEST_PORT for their clusters).
    for (const char *k : {"PGPASSWORD", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGTZ"})
        child_env.erase(k);
    std::vector<std::string> inherited;
    for (const auto &entry : child_env) {
        auto name = entry.get_name();
        for (const char *prefix : {"SOURCE_", "DEST_", "WEBHOOK_", "PIPELINE_NAME", "PGINCR_"})
            if (name.rfind(prefix, 0) == 0 && name.rfind("PGINCR_TEST_", 0) != 0)
                inherited.push_back(name);
    }
    for (const auto &name : inherited)
        child_env.erase(name);
    for (const auto &[k, v] : extra_env)
        child_env[k] = v;
    return child_env;
}

RunResult run_pgincr(const std::filesystem::path &dir, const std::vector<std::string> &args,
                     const std::map<std::string, std::string> &extra_env) {
    auto child_env = pgincr_environment(extra_env);
    bp::ipstream out, err;
    RunResult r;
    std::string bin = env_or_fail("PGINCR_TEST_BIN");
    bp::child child(bin, bp::args(args), bp::start_dir(dir.string()), bp::std_out > out,
                    bp::std_err > err, bp::std_in < bp::null, child_env);
    // Read both pipes concurrently so a full pipe cannot deadlock the child.
    std::thread err_reader([&] {
        std::ostringstream s;
        s << err.rdbuf();
        r.err = s.str();
    });
    std::ostringstream s;
    s << out.rdbuf();
    r.out = s.str();
    err_reader.join();
    child.wait();
    int status = child.native_exit_code();
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return r;
}

WorkDir::WorkDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pgincr-test.XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
        FAIL("mkdtemp failed");
    path_ = tmpl;
}

WorkDir::~WorkDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

void WorkDir::write(const std::string &file, const std::string &content) const {
    std::filesystem::create_directories((path_ / file).parent_path());
    std::ofstream(path_ / file, std::ios::binary) << content;
}

std::string WorkDir::read(const std::string &file) const {
    std::ifstream in(path_ / file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void WorkDir::write_env(const TestDatabases &dbs, const std::string &source_schema,
                        const std::string &dest_schema, const std::string &extra) const {
    auto src = dbs.source_info();
    auto dst = dbs.dest_info();
    std::string text = fmt::format(
        "SOURCE_HOST={}\nSOURCE_PORT={}\nSOURCE_DB={}\nSOURCE_USERNAME={}\nSOURCE_PASSWORD={}\n"
        "SOURCE_SCHEMA={}\nDEST_HOST={}\nDEST_PORT={}\nDEST_DB={}\nDEST_USERNAME={}\n"
        "DEST_PASSWORD={}\n",
        src.host, src.port, src.dbname, src.user, src.password, source_schema, dst.host, dst.port,
        dst.dbname, dst.user, dst.password);
    if (!dest_schema.empty())
        text += fmt::format("DEST_SCHEMA={}\n", dest_schema);
    text += extra;
    write(".env", text);
}

} // namespace pgincr::test
