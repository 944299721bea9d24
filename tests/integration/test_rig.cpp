// The test rig itself: what scripts/test starts besides the source and destination
// (TLS on the source, a hot standby, restartable clusters) works as the tests using it
// assume. TLS goes through raw libpq so that these checks do not depend on how pgincr
// passes its own TLS settings.
#include "pg/connection.hpp"
#include "support/servers.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <libpq-fe.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace pgincr;
using namespace pgincr::test;

namespace {

struct Finish {
    void operator()(PGconn *c) const noexcept { PQfinish(c); }
};
using RawConn = std::unique_ptr<PGconn, Finish>;

// Keywords and values rather than a conninfo string: the password needs no quoting.
RawConn connect_source(const std::map<std::string, std::string> &settings) {
    std::map<std::string, std::string> all = {
        {"host", env_or_fail("PGINCR_TEST_HOST")},
        {"port", env_or_fail("PGINCR_TEST_SRC_PORT")},
        {"dbname", "postgres"},
        {"user", "postgres"},
        {"password", env_or_fail("PGINCR_TEST_PASSWORD")},
        {"connect_timeout", "10"},
    };
    for (const auto &[k, v] : settings)
        all[k] = v;
    std::vector<const char *> keys, values;
    for (const auto &[k, v] : all) {
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    RawConn conn(PQconnectdbParams(keys.data(), values.data(), 0));
    REQUIRE(conn);
    return conn;
}

std::string raw_scalar(PGconn *conn, const char *sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn, sql), &PQclear);
    INFO(PQerrorMessage(conn));
    REQUIRE(PQresultStatus(res.get()) == PGRES_TUPLES_OK);
    REQUIRE(PQntuples(res.get()) == 1);
    return PQgetvalue(res.get(), 0, 0);
}

std::string literal(pg::Connection &conn, const std::string &value) {
    char *quoted = PQescapeLiteral(conn.get(), value.data(), value.size());
    REQUIRE(quoted);
    std::string out = quoted;
    PQfreemem(quoted);
    return out;
}

const char *own_ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

} // namespace

TEST_CASE("rig: the source's certificate verifies with the test CA - for 127.0.0.1 and localhost") {
    for (const char *host : {"127.0.0.1", "localhost"}) {
        INFO(host);
        auto conn = connect_source(
            {{"host", host}, {"sslmode", "verify-full"}, {"sslrootcert", ca_cert()}});
        INFO(PQerrorMessage(conn.get()));
        REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
        CHECK(PQsslInUse(conn.get()) == 1);
        CHECK(raw_scalar(conn.get(), own_ssl) == "t");
    }
}

TEST_CASE("rig: verify-full with the wrong CA fails certificate verification") {
    auto conn = connect_source({{"sslmode", "verify-full"}, {"sslrootcert", wrong_ca_cert()}});
    std::string message = PQerrorMessage(conn.get());
    INFO(message);
    CHECK(PQstatus(conn.get()) == CONNECTION_BAD);
    CHECK(message.find("certificate verify failed") != std::string::npos);
}

TEST_CASE("rig: the role pgincr_tls reaches the source only over TLS") {
    auto admin_conn = admin(pg::Side::source);
    std::string password = env_or_fail("PGINCR_TEST_PASSWORD");
    // Other tests create the role too, with the suite's password; whoever comes first
    // creates it, and the ALTER keeps it usable whatever ran before.
    admin_conn->exec("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                     "'pgincr_tls') THEN CREATE ROLE pgincr_tls; END IF; END$$");
    admin_conn->exec(
        fmt::format("ALTER ROLE pgincr_tls LOGIN PASSWORD {}", literal(*admin_conn, password)));

    auto plain = connect_source({{"user", "pgincr_tls"}, {"sslmode", "disable"}});
    std::string message = PQerrorMessage(plain.get());
    INFO(message);
    CHECK(PQstatus(plain.get()) == CONNECTION_BAD);
    CHECK(message.find("pg_hba.conf rejects connection") != std::string::npos);

    auto tls = connect_source(
        {{"user", "pgincr_tls"}, {"sslmode", "verify-full"}, {"sslrootcert", ca_cert()}});
    INFO(PQerrorMessage(tls.get()));
    REQUIRE(PQstatus(tls.get()) == CONNECTION_OK);
    CHECK(raw_scalar(tls.get(), "SELECT current_user") == "pgincr_tls");
    CHECK(raw_scalar(tls.get(), own_ssl) == "t");

    // Everyone else still may connect without TLS.
    auto postgres_plain = connect_source({{"sslmode", "disable"}});
    INFO(PQerrorMessage(postgres_plain.get()));
    REQUIRE(PQstatus(postgres_plain.get()) == CONNECTION_OK);
    CHECK(raw_scalar(postgres_plain.get(), own_ssl) == "f");
}

TEST_CASE("rig: the standby is in recovery - and replays what the source writes") {
    TestDatabases dbs("rig_standby");
    dbs.src().exec("CREATE TABLE t (id int PRIMARY KEY, note text)");
    dbs.src().exec("INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 1000) g");
    wait_for_standby(dbs.src());
    // Declared after dbs so that it is closed before the database is dropped: replaying
    // the DROP DATABASE would otherwise end it on the standby.
    pg::Connection standby(standby_info(dbs.name()));
    CHECK(scalar(standby, "SELECT pg_is_in_recovery()") == "t");
    CHECK(digest(standby, "public.t") == digest(dbs.src(), "public.t"));
    CHECK(digest(standby, "public.t").rows == 1000);
    try {
        standby.exec("CREATE TABLE u (id int)");
        FAIL("a write went through on the standby");
    } catch (const pg::PgError &e) {
        CHECK(e.sqlstate() == "25006"); // read_only_sql_transaction
    }
}

TEST_CASE("rig: restart_server breaks existing sessions - and the server comes back the same") {
    auto before = admin(pg::Side::dest);
    auto started = scalar(*before, "SELECT pg_postmaster_start_time()");
    restart_server("dest");
    CHECK_THROWS_AS(before->exec("SELECT 1"), pg::PgError);
    CHECK_FALSE(before->ok());

    auto after = admin(pg::Side::dest); // same port
    CHECK(scalar(*after, "SELECT pg_postmaster_start_time()") != started);
    // The options from scripts/lib/common.sh survive the restart.
    CHECK(scalar(*after, "SELECT current_setting('max_prepared_transactions')") == "10");
    CHECK(scalar(*after, "SELECT current_setting('fsync')") == "off");
}
