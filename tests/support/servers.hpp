#pragma once
// Access to the throwaway clusters that scripts/test starts. Connection details
// come from PGINCR_TEST_* environment variables; without them the integration and
// CLI suites fail loudly instead of skipping.
#include "pg/connection.hpp"

#include <boost/process/environment.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace pgincr::test {

std::string env_or_fail(const char *name);

// Superuser sessions (not read-only) for setting up data on either server.
pg::ConnInfo admin_info(pg::Side side, const std::string &db = "postgres");
std::unique_ptr<pg::Connection> admin(pg::Side side, const std::string &db = "postgres");

// The source's hot standby (scripts/test starts it): a superuser session on the source
// side, which is how pgincr would read from a standby.
pg::ConnInfo standby_info(const std::string &db = "postgres");
// Waits until the standby has replayed everything written on `primary` so far, so that
// a test reads on the standby what it just wrote on the source. Fails after 60 s.
void wait_for_standby(pg::Connection &primary);

// Restarts "source", "dest" or "standby" (fast shutdown: sessions are broken) on the same
// port with the same options, and returns once it accepts connections again.
void restart_server(const std::string &name);

// The CA that signed the source's certificate (for sslmode=verify-full), and an unrelated
// one that a client verifying with it must reject. The role pgincr_tls may only reach the
// source over TLS.
std::string ca_cert();
std::string wrong_ca_cert();

// Drops the source's replication slot `name`, if it exists, when it goes out of scope:
// a failed test must not leave a slot holding WAL on the shared server.
struct SlotCleanup {
    std::string name;
    ~SlotCleanup();
};

// A fresh database on both servers, named after the test, dropped by the destructor.
// Isolates tests from each other without restarting the clusters.
class TestDatabases {
  public:
    explicit TestDatabases(const std::string &name);
    ~TestDatabases();
    const std::string &name() const { return name_; }
    pg::Connection &src() { return *src_; }
    pg::Connection &dst() { return *dst_; }
    // pgincr's own view of the servers: the source is read-only.
    pg::ConnInfo source_info() const;
    pg::ConnInfo dest_info() const;

  private:
    std::string name_;
    std::unique_ptr<pg::Connection> src_;
    std::unique_ptr<pg::Connection> dst_;
};

// count(*) and an order-independent checksum of every row's text form.
struct TableDigest {
    long long rows = 0;
    std::string md5;
    bool operator==(const TableDigest &) const = default;
};
TableDigest digest(pg::Connection &conn, const std::string &qualified_table);

std::string scalar(pg::Connection &conn, const std::string &sql);

// Runs build/pgincr (PGINCR_TEST_BIN) in `dir` with `args`, capturing everything.
struct RunResult {
    int exit_code = -1; // -1 when killed by a signal
    int signal = 0;
    std::string out;
    std::string err;
    std::string all() const { return out + err; }
};
RunResult run_pgincr(const std::filesystem::path &dir, const std::vector<std::string> &args,
                     const std::map<std::string, std::string> &extra_env = {});
// The environment run_pgincr gives pgincr: this one without libpq's and pgincr's own
// variables (the test's .env decides), plus `extra_env`.
boost::process::environment pgincr_environment(const std::map<std::string, std::string> &extra_env);

// The repository root: README.md, scripts/.
std::filesystem::path source_dir();
std::string read_text(const std::filesystem::path &file);

// Runs scripts/<script> in `dir` with PGINCR_BIN set to the binary under test and
// without the developer's libpq variables; stdout and stderr are merged into `out`.
// `timeout` sends SIGTERM after `seconds`, on which the scripts still stop their servers.
RunResult run_script(const std::string &script, const std::vector<std::string> &args,
                     const std::filesystem::path &dir, int seconds);

// A temporary working directory, as a user would clone one per schema.
class WorkDir {
  public:
    WorkDir();
    ~WorkDir();
    const std::filesystem::path &path() const { return path_; }
    void write(const std::string &file, const std::string &content) const;
    std::string read(const std::string &file) const;
    // .env for the given databases and schemas, with the test password.
    void write_env(const TestDatabases &dbs, const std::string &source_schema,
                   const std::string &dest_schema = "", const std::string &extra = "") const;
    RunResult run(const std::vector<std::string> &args,
                  const std::map<std::string, std::string> &extra_env = {}) const {
        return run_pgincr(path_, args, extra_env);
    }

  private:
    std::filesystem::path path_;
};

} // namespace pgincr::test
