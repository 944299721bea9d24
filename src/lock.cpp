#include "lock.hpp"

#include "util/error.hpp"
#include "util/time.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

namespace pgincr::lock {

namespace {
// 'pgin': the first key of pgincr's advisory locks; the second is the schema's hash.
constexpr const char *lock_key1 = "1885825390";
} // namespace

StateDirLock::StateDirLock(const std::filesystem::path &state_dir) {
    std::filesystem::create_directories(state_dir);
    auto path = state_dir / ".pgincr.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
        throw Error(
            fmt::format("{}: cannot open the lock file: {}", path.string(), std::strerror(errno)));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        char buf[256] = {};
        ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
        std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "unknown";
        while (!holder.empty() && holder.back() == '\n')
            holder.pop_back();
        ::close(fd_);
        fd_ = -1;
        throw LockedError(fmt::format("another pgincr run holds {} ({})", path.string(), holder));
    }
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    std::string who = fmt::format("pid {} on {} since {}\n", ::getpid(), host,
                                  timeutil::iso_utc(std::chrono::system_clock::now()));
    if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, who.data(), who.size(), 0) < 0) {
        // The lock holds regardless; the text only helps a second run name us.
    }
}

StateDirLock::~StateDirLock() {
    if (fd_ >= 0) {
        ::flock(fd_, LOCK_UN);
        ::close(fd_);
    }
}

RunLock::RunLock(const std::filesystem::path &state_dir, const pg::ConnInfo &dest,
                 const std::string &dest_schema, Take take)
    : dir_lock_(state_dir), dest_(dest), dest_schema_(dest_schema) {
    if (take == Take::now)
        acquire();
}

bool RunLock::held() const {
    return conn_ && conn_->ok();
}

void RunLock::acquire() {
    conn_.reset();
    auto conn = std::make_unique<pg::Connection>(dest_);
    auto got = conn->exec("SELECT pg_catalog.pg_try_advisory_lock($1::int4, "
                          "pg_catalog.hashtext($2))",
                          {lock_key1, dest_schema_}, pg::Expect::value);
    if (!got.boolean(0, 0)) {
        auto holder = conn->exec(
            "SELECT a.pid, coalesce(a.client_hostname, host(a.client_addr), 'local socket'), "
            "a.backend_start::text FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.classid = "
            "$1::pg_catalog.oid AND l.objsubid = 2 AND l.objid::text::int8 = "
            "(pg_catalog.hashtext($2)::int8 + 4294967296) % 4294967296 LIMIT 1",
            {lock_key1, dest_schema_}, pg::Expect::rows);
        std::string who_db =
            holder.rows() > 0 ? fmt::format("backend pid {} from {}, connected since {}",
                                            holder.text(0, 0), holder.text(0, 1), holder.text(0, 2))
                              : "holder not visible to this role";
        throw LockedError(fmt::format("another pgincr run is syncing destination schema \"{}\" on "
                                      "{} ({})",
                                      dest_schema_, dest_.describe(), who_db));
    }
    conn_ = std::move(conn);
}

void RunLock::ensure_held() {
    try {
        if (conn_ && conn_->ok()) {
            // Mid-COPY the session takes no other statement, and in a failed transaction
            // it answers every one with an error: either way the server spoke on it just
            // now, and the session's own next statement fails if it has gone since.
            auto status = PQtransactionStatus(conn_->get());
            if (status == PQTRANS_ACTIVE || status == PQTRANS_INERROR)
                return;
            conn_->exec("SELECT 1", pg::Expect::value);
            return;
        }
    } catch (const pg::PgError &) {
        // An error the server sent (a cancelled statement) still came over the session.
        if (conn_->ok())
            return;
    }
    throw lost();
}

pg::Connection &RunLock::session() {
    if (!held())
        throw lost();
    return *conn_;
}

LockLostError RunLock::lost() const {
    return LockLostError(fmt::format(
        "lost the run lock: its destination session on {} is gone (server restart, terminated "
        "backend or network), so another run may have started; stopping. The next run takes "
        "the lock again and goes on from the saved state",
        dest_.describe()));
}

RunLock::~RunLock() {
    conn_.reset(); // closing the session releases the advisory lock
}

} // namespace pgincr::lock
