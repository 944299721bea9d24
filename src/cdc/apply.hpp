#pragma once
// The cdc mode's apply step for one table (groundwork for issue 15): decoded changes
// stream by COPY into a session-local staging table, each with its position in the
// stream, and are applied in the caller's destination transaction. A batch of inserts
// and updates with every key once and no unchanged TOASTed value goes in with one
// INSERT … ON CONFLICT; any other batch by set-based SQL:
// the last change of each key wins (a delete deletes, an insert or update upserts), an
// unchanged TOASTed value keeps the value of the latest earlier image of the key in the
// batch, else the destination's, and TRUNCATE empties the table and drops what was
// staged before it. Under target_wins and manual, keys changed in the destination are
// left as they are (TRUNCATE then deletes only the other rows). Memory stays flat
// whatever the batch: rows go to the server in chunks of 64 kB as they are added, by
// one COPY that stays open until the session has another statement to run.
#include "cdc/pgoutput.hpp"
#include "pg/connection.hpp"
#include "pg/copy.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace pgincr::cdc {

// One pgoutput value as a field of COPY's text format: \N for NULL, backslash, tab,
// newline and carriage return escaped.
void append_copy_field(std::string &out, const Value &value);

struct TableShape {
    std::string target;               // "schema"."table" in the destination
    std::vector<std::string> columns; // quoted, in the Relation message's order
    std::vector<std::string> types;   // their destination types
    std::vector<std::size_t> key;     // positions of the unique columns in `columns`
    // newest_wins (apply/conflicts.hpp): the quoted conflict_column; an upsert then
    // updates a row only when its value is at least the destination row's ("": always).
    std::string newest;
    // target_wins, manual (apply/conflicts.hpp): the qualified
    // <destination>_pgincr_touched. A change of a key recorded there (changed in the
    // destination) leaves the destination row as it is and is a conflict ("": none).
    std::string touched;
    // manual: the qualified <destination>_conflicts, where each such change is written.
    std::string conflicts_table;
};

class TableApply {
  public:
    // Creates (once per session) and empties the staging table. `dst` must be inside
    // the transaction the changes are applied in.
    TableApply(pg::Connection &dst, TableShape shape);
    ~TableApply();
    TableApply(const TableApply &) = delete;
    TableApply &operator=(const TableApply &) = delete;

    void add(const Insert &m);
    void add(const Update &m); // an update that changes the key deletes the old key
    void add(const Delete &m);
    // TRUNCATE of the source table: applied at once, and what was staged is dropped.
    void truncate();
    // Applies everything staged; returns the rows deleted plus the rows upserted.
    std::int64_t finish();
    // Ends the COPY that stages this table's rows, if one is open: the session then
    // takes other statements (another table's, the caller's).
    void end_copy();
    // The changes held back: newest_wins, the upserts the destination row was newer
    // than; target_wins, manual, those of keys changed in the destination.
    std::int64_t conflicts() const { return conflicts_; }
    const TableShape &shape() const { return shape_; }
    // What the caller does while a long statement of the apply runs.
    void set_while_busy(pg::WhileBusy busy) { busy_ = std::move(busy); }

  private:
    void stage(char op, const Tuple &row, const Tuple *from = nullptr);
    void flush_copy();
    bool apply_direct(std::int64_t &upserted);
    std::int64_t apply_general();
    void reset_batch();
    std::int64_t run(const std::string &sql);
    // target_wins, manual: the predicate that the key `of` (expressions, one per key
    // column) is recorded as changed in the destination.
    std::string touched_match(const std::vector<std::string> &of) const;
    std::string key_json(const std::string &alias) const; // the key of `alias` as jsonb
    // target_wins, manual: locks out other writers, counts (manual: records) the
    // batch's changes of keys changed in the destination, and adds to `v` the
    // predicates by which the upsert and the delete leave them out.
    std::int64_t hold_touched(std::vector<std::pair<std::string, std::string>> &v);
    pg::Connection &dst_;
    TableShape shape_;
    std::string staging_;
    std::string buffer_;
    std::unique_ptr<pg::CopyIn> copy_; // open while this table's rows come in a row
    std::int64_t seq_ = 0;
    std::int64_t staged_ = 0;
    // Whether the batch so far takes the direct path, and a hash of each staged key to
    // find a key staged twice (bounded: past `direct_keys_max` the batch goes the
    // general way).
    bool direct_ = true;
    std::vector<std::uint64_t> key_hashes_;
    std::int64_t conflicts_ = 0;
    std::set<std::string> moved_into_; // keys rows moved to in this batch (rare)
    pg::WhileBusy busy_;
};

} // namespace pgincr::cdc
