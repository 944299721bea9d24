// How pgincr's sessions are set up, and what its errors add to the server's message.
#include "pg/error.hpp"
#include "pg/session.hpp"

#include <algorithm>
#include <doctest/doctest.h>

using namespace pgincr;

namespace {
bool has(const std::string &text, const std::string &part) {
    if (text.find(part) != std::string::npos)
        return true;
    MESSAGE("'" << text << "' does not contain '" << part << "'");
    return false;
}

std::string param(const pg::ConnInfo &info, const std::string &key) {
    auto params = pg::session::connect_params(info);
    auto it = std::find_if(params.begin(), params.end(), [&](auto &p) { return p.first == key; });
    return it == params.end() ? "(unset)" : it->second;
}
} // namespace

TEST_CASE("session: pinned sessions outrank role and database settings") {
    pg::ConnInfo src;
    src.side = pg::Side::source;
    src.read_only = true;
    src.pinned = true;
    src.lock_timeout_seconds = 42;
    auto o = pg::session::startup_options(src);
    for (const char *part :
         {"-c search_path= ", "-c statement_timeout=0", "-c idle_in_transaction_session_timeout=0",
          "-c lock_timeout=42s", "-c DateStyle=ISO", "-c IntervalStyle=postgres",
          "-c extra_float_digits=3", "-c default_transaction_read_only=on", "-c row_security=off",
          "default_transaction_isolation=read\\ committed"})
        CHECK(has(o, part));

    pg::ConnInfo dst = src;
    dst.side = pg::Side::dest;
    dst.read_only = false;
    auto d = pg::session::startup_options(dst);
    CHECK(has(d, "-c lock_timeout=42s"));
    CHECK(d.find("row_security") == std::string::npos);
    CHECK(d.find("read_only") == std::string::npos);
    // The conflict policies' trigger tells pgincr's destination writes by this; the
    // source never carries it.
    CHECK(has(d, "-c pgincr.writer=on"));
    CHECK(o.find("pgincr.writer") == std::string::npos);

    // Test and admin sessions keep the server's search_path.
    pg::ConnInfo plain;
    CHECK(pg::session::startup_options(plain).find("search_path") == std::string::npos);
}

TEST_CASE("session: UTF8 on every session - TLS keys only when set") {
    pg::ConnInfo info;
    info.host = "h";
    CHECK(param(info, "client_encoding") == "UTF8");
    CHECK(param(info, "application_name") == "pgincr_unpinned");
    info.pinned = true;
    CHECK(param(info, "application_name") == "pgincr");
    info.pinned = false;
    CHECK(param(info, "sslmode") == "(unset)");
    CHECK(param(info, "password") == "(unset)");
    info.sslmode = "verify-full";
    info.sslrootcert = "/ca.pem";
    info.sslcert = "/c.pem";
    info.sslkey = "/k.pem";
    CHECK(param(info, "sslmode") == "verify-full");
    CHECK(param(info, "sslrootcert") == "/ca.pem");
    CHECK(param(info, "sslcert") == "/c.pem");
    CHECK(param(info, "sslkey") == "/k.pem");
}

TEST_CASE("errors: advice names the column, the lock timeout, the standby settings") {
    auto enc = pg::advice(pg::Side::dest, "22P05",
                          "character with byte sequence 0xe2 0x82 0xac in encoding \"UTF8\" has "
                          "no equivalent in encoding \"LATIN1\"",
                          "COPY _pgincr_load_0123456789abcdef, line 1, column note", "LATIN1", 300);
    CHECK(has(enc, "column \"note\""));
    CHECK(has(enc, "LATIN1"));
    CHECK(has(enc, "destination database"));
    CHECK(has(enc, "nothing of this table was written"));

    auto lock = pg::advice(pg::Side::dest, "55P03", "canceling statement due to lock timeout", "",
                           "UTF8", 17);
    CHECK(has(lock, "PGINCR_LOCK_TIMEOUT_SECONDS (17 s)"));

    auto standby = pg::advice(pg::Side::source, "40001",
                              "canceling statement due to conflict with recovery", "", "UTF8", 1);
    CHECK(has(standby, "hot_standby_feedback"));
    CHECK(has(standby, "max_standby_streaming_delay"));

    CHECK(pg::advice(pg::Side::dest, "23505", "duplicate key", "", "UTF8", 1).empty());
}
