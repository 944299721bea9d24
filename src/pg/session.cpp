#include "pg/session.hpp"

#include <cstdlib>
#include <fmt/format.h>

namespace pgincr::pg::session {

std::vector<std::pair<std::string, std::string>> connect_params(const ConnInfo &info) {
    std::vector<std::pair<std::string, std::string>> out;
    auto add = [&](const char *key, const std::string &value) {
        if (!value.empty())
            out.emplace_back(key, value);
    };
    add("host", info.host);
    add("port", info.port);
    add("dbname", info.dbname);
    add("user", info.user);
    add("password", info.password);
    add("sslmode", info.sslmode);
    add("sslrootcert", info.sslrootcert);
    add("sslcert", info.sslcert);
    add("sslkey", info.sslkey);
    if (info.replication)
        add("replication", "database");
    // Sessions that are not pgincr's own (tests, tools) are told apart in pg_stat_activity.
    add("application_name", info.pinned ? "pgincr" : "pgincr_unpinned");
    // Text crosses as UTF-8 on every session, test sessions included: a destination
    // in another encoding converts on input, or rejects what it cannot hold.
    add("client_encoding", "UTF8");
    // Dead peers are noticed within a few minutes instead of the kernel's two hours.
    add("keepalives_idle", "60");
    if (!std::getenv("PGCONNECT_TIMEOUT"))
        add("connect_timeout", "10");
    add("options", startup_options(info));
    return out;
}

std::string startup_options(const ConnInfo &info) {
    std::string o = "-c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3 "
                    "-c client_min_messages=warning";
    if (info.read_only)
        o += " -c default_transaction_read_only=on";
    if (!info.pinned)
        return o;
    o += " -c search_path= -c statement_timeout=0 -c idle_in_transaction_session_timeout=0";
    o += fmt::format(" -c lock_timeout={}s", info.lock_timeout_seconds);
    // A space inside a value is escaped with a backslash in `options`.
    o += " -c default_transaction_isolation=read\\ committed";
    if (info.side == Side::source)
        o += " -c row_security=off";
    // Tells pgincr's writes from others' (apply/conflicts.hpp): the target_wins
    // trigger skips sessions that carry it.
    if (info.side == Side::dest)
        o += " -c pgincr.writer=on";
    return o;
}

void finish_setup(Connection &conn) {
    if (!conn.info().pinned)
        return;
    // The run lock's session sits idle for the whole run; a role's idle_session_timeout
    // would end it and release the lock.
    if (conn.server_version() >= 140000)
        conn.exec("SET idle_session_timeout = 0");
}

} // namespace pgincr::pg::session
