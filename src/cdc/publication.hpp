#pragma once
// The cdc mode's publication on the source, one of the two objects pgincr may write
// there (the slot is the other). pgincr creates it when its role may, marks it as its
// own with a comment, and keeps its table list equal to the config's cdc entries. A
// publication someone else made is used as it is: what it lacks is said as the SQL to
// run, and pgincr never alters or drops it.
#include "pg/connection.hpp"

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace pgincr::cdc {

using SourceName = std::pair<std::string, std::string>; // schema, table

struct Publication {
    bool exists = false;
    bool ours = false; // created by pgincr (its comment says so)
    bool all_tables = false;
    std::set<SourceName> tables;
    bool carries(const SourceName &t) const { return all_tables || tables.count(t) > 0; }
};

Publication read_publication(pg::Connection &src, const std::string &name);

// The statement that creates the publication for `tables` (for `check` and errors).
std::string create_publication_sql(const pg::Connection &conn, const std::string &name,
                                   const std::vector<SourceName> &tables);

// Makes the publication carry `tables` (every cdc entry of the config, not only this
// run's): creates it, or adds and removes tables when it is pgincr's. `writable` is a
// source session that may write (pgincr's usual source session is read-only). Returns,
// for each table the publication still lacks, what to run; empty when all is well.
std::map<SourceName, std::string>
ensure_publication(pg::Connection &src, const pg::ConnInfo &writable, const std::string &name,
                   const std::string &pipeline, const std::vector<SourceName> &tables);

// DROP PUBLICATION when pgincr created it; false (and nothing done) otherwise.
bool drop_publication_if_ours(pg::Connection &writable, const std::string &name);

} // namespace pgincr::cdc
