#pragma once
// A whole pgincr setup for one test: a fresh database on each server, a working
// directory with .env and tables-config.json, and helpers to run and compare.
#include "state.hpp"
#include "support/servers.hpp"

#include <string>

namespace pgincr::test {

class Pipeline {
  public:
    explicit Pipeline(const std::string &name, const std::string &source_schema = "public",
                      const std::string &dest_schema = "replica",
                      const std::string &extra_env = "");

    pg::Connection &src() { return dbs.src(); }
    pg::Connection &dst() { return dbs.dst(); }
    void tables(const std::string &json) const { dir.write("tables-config.json", json); }
    RunResult sync(const std::map<std::string, std::string> &env = {}) const {
        return dir.run({"sync"}, env);
    }
    RunResult run(const std::vector<std::string> &args,
                  const std::map<std::string, std::string> &env = {}) const {
        return dir.run(args, env);
    }
    std::string src_rel(const std::string &table);
    std::string dst_rel(const std::string &table);
    // Source and destination hold the same rows (count and checksum of text forms).
    bool equal(const std::string &table, const std::string &dest_table = "");
    std::optional<state::TableState> state(const std::string &dest_table) const;
    long long dst_count(const std::string &dest_table);

    TestDatabases dbs;
    WorkDir dir;
    std::string source_schema;
    std::string dest_schema;
};

// Runs a sync and fails the test with pgincr's output when the exit code differs.
#define REQUIRE_SYNC(pipeline, code)                                                               \
    do {                                                                                           \
        auto r_ = (pipeline).sync();                                                               \
        INFO(r_.all());                                                                            \
        REQUIRE(r_.exit_code == (code));                                                           \
    } while (0)

} // namespace pgincr::test
