#pragma once
// One run at a time: an flock on the state directory (same machine) and a session
// advisory lock on the destination for the destination schema (any machine). A
// second run fails at once with LockedError naming the holder.
#include "pg/connection.hpp"
#include "util/error.hpp"

#include <filesystem>
#include <memory>
#include <string>

namespace pgincr::lock {

// The state directory's flock alone: enough for commands that only touch state
// files (`pgincr reset`).
class StateDirLock {
  public:
    explicit StateDirLock(const std::filesystem::path &state_dir);
    ~StateDirLock();
    StateDirLock(const StateDirLock &) = delete;
    StateDirLock &operator=(const StateDirLock &) = delete;

  private:
    int fd_ = -1;
};

class LockLostError : public LockedError {
  public:
    using LockedError::LockedError;
};

class RunLock {
  public:
    // `later`: only the state directory's flock now, the advisory lock at acquire():
    // a watch holds the directory while it waits for the destination to come up.
    enum class Take { now, later };
    RunLock(const std::filesystem::path &state_dir, const pg::ConnInfo &dest,
            const std::string &dest_schema, Take take = Take::now);
    ~RunLock();
    RunLock(const RunLock &) = delete;
    RunLock &operator=(const RunLock &) = delete;

    // The advisory lock lives as long as its session: a destination restart, a
    // terminated backend or a network cut releases it, and a second run may start.
    // Throws LockLostError when the session is gone, so that this run stops instead
    // of going on unlocked. One round trip, or none while the session is busy with the
    // run's own work (a COPY, a failed statement): it answered a moment ago then.
    void ensure_held();

    // The lock's session, which also does the run's destination work (one session per
    // side and run). A statement that fails on it leaves the lock in place: only the
    // session's end releases it. Throws LockLostError when the lock is not held.
    pg::Connection &session();

    // Whether the advisory lock's session is open (as far as libpq knows).
    bool held() const;
    // Takes the advisory lock in a new session: after Take::later, or after the old
    // session died. Throws LockedError when another run holds it, pg::PgError when the
    // destination cannot be reached.
    void acquire();

  private:
    LockLostError lost() const;
    StateDirLock dir_lock_;
    pg::ConnInfo dest_;
    std::string dest_schema_;
    std::unique_ptr<pg::Connection> conn_;
};

} // namespace pgincr::lock
