#pragma once
// The exception hierarchy. There is one top-level catch (cli::run) that maps each
// type to a documented exit code; per-table errors are caught by the runner so that
// one failing table does not stop the others.
#include <stdexcept>
#include <string>

namespace pgincr {

enum ExitCode : int {
    exit_ok = 0,
    exit_table_failed = 1, // at least one table failed, or check found a blocking problem
    exit_config = 2,       // usage or configuration error
    exit_locked = 3,       // another run holds the lock
    exit_interrupted = 4,  // SIGINT/SIGTERM: the current table was rolled back
    exit_not_in_sync = 5,  // watch --until-in-sync: --max-runtime passed first
};

class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Bad .env, tables-config.json or command line: always names the file and key.
class ConfigError : public Error {
  public:
    using Error::Error;
};

// Another pgincr run holds the state-dir or destination lock.
class LockedError : public Error {
  public:
    using Error::Error;
};

// A child process (pg_dump) failed: exit status or signal plus its stderr tail.
class ChildProcessError : public Error {
  public:
    using Error::Error;
};

// The run was interrupted by a signal.
class InterruptedError : public Error {
  public:
    using Error::Error;
};

} // namespace pgincr
