// The libpq core against a real server: read-only source sessions, errors that carry
// SQLSTATE and side, transactions that roll back, COPY pass-through.
#include "pg/connection.hpp"
#include "pg/copy.hpp"
#include "support/servers.hpp"

#include <doctest/doctest.h>

using namespace pgincr;
using namespace pgincr::test;

TEST_CASE("connection: a write through the source session fails - whatever the role may do") {
    TestDatabases dbs("conn_readonly");
    dbs.src().exec("CREATE TABLE t (id int)");
    pg::Connection source(dbs.source_info()); // superuser, yet read-only
    try {
        source.exec("INSERT INTO public.t VALUES (1)");
        FAIL("the insert went through");
    } catch (const pg::PgError &e) {
        CHECK(e.sqlstate() == "25006"); // read_only_sql_transaction
        CHECK(e.side() == pg::Side::source);
        CHECK(std::string(e.what()).find("[source]") != std::string::npos);
    }
    CHECK(scalar(dbs.src(), "SELECT count(*) FROM t") == "0");
    CHECK(scalar(source, "SELECT current_setting('application_name')") == "pgincr");
}

TEST_CASE("connection: errors carry SQLSTATE - message and statement") {
    TestDatabases dbs("conn_errors");
    try {
        dbs.dst().exec("SELECT * FROM no_such_table");
        FAIL("no error");
    } catch (const pg::PgError &e) {
        CHECK(e.sqlstate() == "42P01");
        CHECK(e.side() == pg::Side::dest);
        CHECK(e.statement() == "SELECT * FROM no_such_table");
    }
    CHECK_THROWS_AS(dbs.dst().exec("SELECT 1, 2", pg::Expect::value), pg::PgError);
    CHECK_THROWS_AS(dbs.dst().exec("SELECT 1 WHERE false", pg::Expect::one_row), pg::PgError);
    // The session stays usable after an error.
    CHECK(scalar(dbs.dst(), "SELECT 42") == "42");
}

TEST_CASE(
    "connection: a wrong password is one clear error naming the side - without the password") {
    auto info = admin_info(pg::Side::dest);
    info.password = "wrong-password-xyz";
    try {
        pg::Connection conn(info);
        FAIL("connected");
    } catch (const pg::ConnectionError &e) {
        std::string what = e.what();
        CHECK(what.find("[dest]") != std::string::npos);
        CHECK(what.find("password authentication failed") != std::string::npos);
        CHECK(what.find("wrong-password-xyz") == std::string::npos);
    }
}

TEST_CASE("connection: a transaction rolls back unless committed") {
    TestDatabases dbs("conn_tx");
    dbs.dst().exec("CREATE TABLE t (id int)");
    {
        pg::Transaction tx(dbs.dst());
        dbs.dst().exec("INSERT INTO t VALUES (1)");
    }
    CHECK(scalar(dbs.dst(), "SELECT count(*) FROM t") == "0");
    {
        pg::Transaction tx(dbs.dst());
        dbs.dst().exec("INSERT INTO t VALUES (2)");
        tx.commit();
    }
    CHECK(scalar(dbs.dst(), "SELECT count(*) FROM t") == "1");
}

TEST_CASE("copy: rows stream between servers - a failing source aborts the target") {
    TestDatabases dbs("conn_copy");
    dbs.src().exec("CREATE TABLE t (id int, note text)");
    dbs.src().exec("INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 5000) g");
    dbs.dst().exec("CREATE TABLE t (id int, note text)");
    pg::Connection source(dbs.source_info());
    auto rows = pg::copy_between(source, "COPY (SELECT * FROM public.t) TO STDOUT (FORMAT binary)",
                                 dbs.dst(), "COPY public.t FROM STDIN (FORMAT binary)");
    CHECK(rows == 5000);
    CHECK(digest(dbs.src(), "public.t") == digest(dbs.dst(), "public.t"));

    pg::Transaction tx(dbs.dst());
    CHECK_THROWS_AS(pg::copy_between(source,
                                     "COPY (SELECT id / (id - 4000), note FROM public.t) TO "
                                     "STDOUT (FORMAT binary)",
                                     dbs.dst(), "COPY public.t FROM STDIN (FORMAT binary)"),
                    pg::PgError);
    // Both sessions are usable afterwards.
    CHECK(scalar(source, "SELECT 1") == "1");
}
