#include "cdc/publication.hpp"

#include "pg/error.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pgincr::cdc {

namespace {

constexpr std::string_view comment_prefix = "pgincr: the cdc publication of pipeline ";

std::string table_list(const pg::Connection &conn, const std::vector<SourceName> &tables) {
    std::vector<std::string> q;
    for (const auto &[schema, table] : tables)
        q.push_back(conn.qualified(schema, table));
    return fmt::format("{}", fmt::join(q, ", "));
}

} // namespace

Publication read_publication(pg::Connection &src, const std::string &name) {
    Publication p;
    auto res = src.exec("SELECT p.puballtables, pg_catalog.obj_description(p.oid, "
                        "'pg_publication') FROM pg_catalog.pg_publication p WHERE p.pubname = $1",
                        {name}, pg::Expect::rows);
    if (res.rows() == 0)
        return p;
    p.exists = true;
    p.all_tables = res.boolean(0, 0);
    p.ours = res.optional(0, 1).value_or("").rfind(comment_prefix, 0) == 0;
    auto tables = src.exec("SELECT schemaname::text, tablename::text FROM "
                           "pg_catalog.pg_publication_tables WHERE pubname = $1",
                           {name}, pg::Expect::rows);
    for (int i = 0; i < tables.rows(); ++i)
        p.tables.emplace(std::string(tables.text(i, 0)), std::string(tables.text(i, 1)));
    return p;
}

std::string create_publication_sql(const pg::Connection &conn, const std::string &name,
                                   const std::vector<SourceName> &tables) {
    return fmt::format("CREATE PUBLICATION {} FOR TABLE {};", conn.quote_ident(name),
                       table_list(conn, tables));
}

std::map<SourceName, std::string>
ensure_publication(pg::Connection &src, const pg::ConnInfo &writable, const std::string &name,
                   const std::string &pipeline, const std::vector<SourceName> &tables) {
    std::map<SourceName, std::string> out;
    auto pub = read_publication(src, name);
    std::vector<SourceName> missing, extra;
    for (const auto &t : tables)
        if (!pub.carries(t))
            missing.push_back(t);
    if (pub.exists && pub.ours)
        for (const auto &t : pub.tables)
            if (std::find(tables.begin(), tables.end(), t) == tables.end())
                extra.push_back(t);
    if (missing.empty() && extra.empty())
        return out;

    std::string qname = src.quote_ident(name);
    if (pub.exists && !pub.ours) {
        for (const auto &t : missing)
            out[t] = fmt::format("publication {} was not created by pgincr, and it does not "
                                 "carry {}; run on the source: ALTER PUBLICATION {} ADD TABLE {};",
                                 qname, src.qualified(t.first, t.second), qname,
                                 src.qualified(t.first, t.second));
        return out;
    }
    std::vector<std::string> statements;
    if (!pub.exists) {
        statements.push_back(create_publication_sql(src, name, tables));
        statements.push_back(
            fmt::format("COMMENT ON PUBLICATION {} IS {};", qname,
                        src.quote_literal(fmt::format("{}{}; `pgincr teardown` drops it",
                                                      comment_prefix, pipeline))));
    } else {
        if (!missing.empty())
            statements.push_back(
                fmt::format("ALTER PUBLICATION {} ADD TABLE {};", qname, table_list(src, missing)));
        if (!extra.empty())
            statements.push_back(
                fmt::format("ALTER PUBLICATION {} DROP TABLE {};", qname, table_list(src, extra)));
    }
    try {
        pg::Connection w(writable);
        pg::Transaction tx(w);
        for (const auto &s : statements)
            w.exec(s);
        tx.commit();
    } catch (const pg::PgError &e) {
        if (e.sqlstate() != "42501")
            throw;
        std::string sql = fmt::format("{}", fmt::join(statements, " "));
        for (const auto &t : missing)
            out[t] = fmt::format("role \"{}\" may not {} publication {} ({}); ask a DBA to run "
                                 "on the source: {}",
                                 writable.user, pub.exists ? "alter" : "create", qname,
                                 e.server_message(), sql);
        return out;
    }
    if (!pub.exists)
        log::info("", "created publication {} on the source for {} table(s)", qname, tables.size());
    else
        log::info("", "publication {}: {} table(s) added, {} removed", qname, missing.size(),
                  extra.size());
    return out;
}

bool drop_publication_if_ours(pg::Connection &writable, const std::string &name) {
    auto pub = read_publication(writable, name);
    if (!pub.exists || !pub.ours)
        return false;
    writable.exec(fmt::format("DROP PUBLICATION {}", writable.quote_ident(name)));
    return true;
}

} // namespace pgincr::cdc
