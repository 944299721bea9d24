#pragma once
// The high-water mark and the late-commit guard. `updated_at DEFAULT now()` is a
// transaction's START time, so a transaction that commits after a sync can write
// keys below the mark that sync saw. The horizon (the oldest start time of any
// transaction still open) is read before the snapshot, and the saved mark never
// passes it: such rows are read again next time, and the merge is idempotent.
#include "config.hpp"
#include "pg/connection.hpp"
#include "source/catalog.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace pgincr::watermark {

// The margin taken off every horizon: a backend fixes now() a moment before it
// publishes xact_start, and a transaction that starts in that gap is not yet visible
// (ARCHITECTURE.md, "Horizon"). It costs one more second of re-read rows per sync.
constexpr int horizon_slack_ms = 1000;

// The oldest open transaction the horizon saw: what holds every time-keyed mark back.
struct OpenTransaction {
    std::optional<int> pid;       // none for a prepared transaction
    std::string application_name; // as the session set it
    std::string state;            // pg_stat_activity.state, or "prepared transaction 'gid'"
    double age_seconds = 0;       // since it began (or was prepared)
};

struct Horizon {
    std::string at;        // timestamptz, as the server prints it
    bool sees_all = false; // the role can see every session (pg_read_all_stats)
    std::int64_t open_transactions = 0;
    std::optional<std::string> oldest_start;
    bool standby = false;                  // the source is a hot standby
    bool from_primary = false;             // read on SOURCE_PRIMARY_HOST, not on the standby
    std::optional<OpenTransaction> oldest; // when one is open and visible
    // Whether `at` rests on a fallback window rather than on seen transactions.
    bool windowed() const { return !sees_all || (standby && !from_primary); }
};

// Autocommit read, before the sync's snapshot is taken. With `primary` (the source is
// a standby and SOURCE_PRIMARY_HOST is set) the horizon is read on the primary, and
// then the standby is waited for until it has replayed everything the primary had
// written at that moment: every transaction not counted in the horizon is then
// visible in the snapshot taken next.
Horizon read_horizon(pg::Connection &src, pg::Connection *primary, int fallback_lookback_seconds);

// Reads the horizon for a run's tables, one after another. A horizon read a moment ago
// still bounds a later snapshot: every transaction it did not count began after it was
// read, so rows such a transaction commits later have keys after it. It is reused while
// it is younger than `max_age`, which spares the read (its query on pg_stat_activity is
// the most expensive statement of a table with no changes) for every table of a quick
// cycle but the first; the marks are then at most `max_age` older, as with the slack.
class HorizonReader {
  public:
    explicit HorizonReader(std::chrono::milliseconds max_age = std::chrono::milliseconds(1000))
        : max_age_(max_age) {}
    // The last horizon when it is young enough, else a new read_horizon.
    const Horizon &read(pg::Connection &src, pg::Connection *primary,
                        int fallback_lookback_seconds);
    // Whether the last read() reused the horizon before it.
    bool reused() const { return reused_; }

  private:
    std::chrono::milliseconds max_age_;
    std::optional<Horizon> last_;
    std::chrono::steady_clock::time_point read_at_;
    bool reused_ = false;
};

// What `check` and `sync` say about a standby source without SOURCE_PRIMARY_HOST.
std::string standby_warning(const config::Settings &settings);

// Whether the server is a hot standby.
bool in_recovery(pg::Connection &conn);

// The SQL type name to cast mark values to: the key's own type.
std::string key_type(const catalog::SourceTable &table);

// SQL expression for the horizon as a value of the key's type, given the parameter
// holding the horizon (e.g. "$2"). Integer keys have no time to compare: nullopt.
std::optional<std::string> horizon_as_key(const catalog::SourceTable &table,
                                          const std::string &param);

// What the source snapshot says for one table (read inside the sync's snapshot).
struct Position {
    std::optional<std::string> max_key;   // the largest key at or after the old mark
    std::optional<std::string> new_mark;  // the mark to save after this sync
    std::optional<std::string> read_from; // the lower bound of this sync's read
    std::optional<double> lag_seconds;    // max_key - new_mark, for time keys
};

// Only rows that pass the table's filter, if any, count.
Position read_position(pg::Connection &src, const catalog::SourceTable &table,
                       const std::optional<std::string> &old_mark, const Horizon &horizon,
                       int lookback_seconds, const std::optional<config::Filter> &filter);

} // namespace pgincr::watermark
