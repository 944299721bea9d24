#pragma once
// The cdc mode's loop (groundwork for issue 15): read the slot's stream up to a WAL
// position, route each table's changes to its apply step (cdc/apply.hpp), and turn
// batches of source transactions into one destination transaction each, whose last
// statement saves the position applied; only after that commit is the position
// confirmed to the slot. A crash anywhere replays from the saved position: nothing is
// lost, and nothing is applied twice because the replay starts after what committed.
#include "cdc/apply.hpp"
#include "cdc/pgoutput.hpp"
#include "pg/connection.hpp"
#include "pg/replication.hpp"
#include "util/error.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace pgincr::cdc {

struct DrainOptions {
    pg::Lsn until; // stop once everything up to here is applied (and confirm up to what
                   // the server said it has sent by then)
    std::int64_t batch_changes = 100000; // changes per destination transaction, at most
    std::chrono::milliseconds batch_time{5000};
    // A batch of at least this many changes also ends when nothing more has arrived:
    // the server is then slower to decode than the destination to apply, and the
    // apply of this batch overlaps its decoding of the next (the stream is read ahead
    // meanwhile) instead of waiting for it.
    std::int64_t batch_when_idle = 1000;
    // A transaction whose commit is this much WAL past the confirmed position has the
    // batch so far committed, and the position moved to that commit, before it is read
    // (drain.cpp says why).
    std::uint64_t confirm_ahead = 16 * 1024 * 1024;
    std::chrono::milliseconds give_up{60000}; // the stream went silent this long: fail
    // Asked between source transactions: true ends the drain there (a signal), with
    // what was read so far applied and confirmed.
    std::function<bool()> stop;
    // `pgincr watch`: once `until` is reached, go on applying what commits until then,
    // each transaction as it arrives (after a short quiet), and move the slot along with
    // the server's WAL end while nothing of the pipeline's tables comes.
    std::optional<std::chrono::steady_clock::time_point> follow_until;
    // Where the counts go as batches commit (they survive a drain that fails later);
    // nullptr: only in the returned result.
    struct DrainResult *progress = nullptr;
};

struct DrainResult {
    pg::Lsn applied;               // the last commit applied and confirmed
    std::int64_t transactions = 0; // source transactions applied
    std::int64_t changes = 0;      // rows inserted, updated or deleted in the destination
    std::int64_t batches = 0;      // destination transactions
    std::map<std::string, std::int64_t> changes_by_target;   // TableShape::target -> changes
    std::map<std::string, std::int64_t> conflicts_by_target; // held back by newest_wins
};

// A change that the destination refused for one table (a data or constraint error, not
// a lost connection): the batch rolled back, and the caller may go on without the table.
class ApplyError : public Error {
  public:
    ApplyError(std::string target, const std::string &what)
        : Error(what), target_(std::move(target)) {}
    const std::string &target() const { return target_; }

  private:
    std::string target_;
};

// Where a source table's changes go.
struct Route {
    TableShape shape;
    // The destination's rows already hold every source transaction that commits before
    // this position (a load taken after the stream's start): those changes are skipped.
    pg::Lsn loaded_through;
};

// A table's route, or nullopt to skip its changes (not a table of this pipeline, or
// one whose columns no longer match). Called for every Relation message, so a changed
// definition reaches the caller, which may also throw to stop the drain.
using Resolve = std::function<std::optional<Route>(const Relation &)>;
// Writes the applied position in the destination, inside the batch's transaction. Once
// the stream is caught up it is also called, in a transaction of its own, with `until`
// when no commit of the pipeline's tables reached it: the slot may then release the
// WAL of other tables' and databases' changes instead of keeping it.
using SaveProgress = std::function<void(pg::Connection &dst, pg::Lsn applied)>;

DrainResult drain(pg::LogicalStream &stream, pg::Connection &dst, const Resolve &resolve,
                  const SaveProgress &save, const DrainOptions &options);

} // namespace pgincr::cdc
