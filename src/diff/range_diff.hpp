#pragma once
// The compare engine behind the delete check (apply/deletes) and `pgincr verify`: a
// range-checksum diff of one table on two servers, after the way data-diff and
// pgcopydb compare work, shaped so that its cost follows the differences.
//
// The key space is split into ranges along the unique index (by value for a single
// integer column, else at keys sampled from whole pages). Both servers compute a count
// and a checksum per range at the same time, one index range scan per range, so each
// does about one index-ordered pass and only numbers cross the network. Ranges that
// differ are split again at every n-th key, and only small ranges have their keys (and
// row hashes) fetched. Every key seen on one side only is then looked up by equality
// on the other side before it is reported, so a range test that two servers evaluate
// differently (text under different collations) can cost time, never a wrong answer.
// Memory is bounded by the batch sizes, whatever the table's size.
#include "pg/connection.hpp"
#include "util/text.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pgincr::diff {

// One text value per key column (as the server prints it), in index order.
using Key = std::vector<std::optional<std::string>>;

// One side of the comparison. The SQL fragments are built by the caller for this
// side's connection; column references in `row` and `in_flight` use the alias `s.`,
// and `where` names the table's columns unqualified.
struct Side {
    pg::Connection *conn = nullptr;
    std::string relation;               // schema-qualified, quoted for conn
    std::vector<std::string> key_cols;  // quoted, in the unique index's order
    std::vector<std::string> key_types; // their types on this side, for typed arrays
    std::vector<std::string> row_cols;  // rows mode: the compared column expressions,
                                        // "%A%" standing for the alias
    std::string where;                  // "" or a predicate (filter, live rows)
    // Source, rows mode: a boolean on %A% telling a row still in flight, "%MARK%"
    // standing for `mark` bound as a parameter; "" when no row is.
    std::string in_flight;
    std::optional<std::string> mark;
};

enum class Compare { keys, rows };

struct Options {
    Compare compare = Compare::keys;
    bool integer_key = false; // one smallint/integer/bigint column: ranges split by value
    // The servers order the key differently (collations): rows are grouped by a hash of
    // the key instead of by ranges: one pass per side, plus one per batch of buckets
    // that differ. Slower when there are many differences, never wrong.
    bool hash_buckets = false;
    std::int64_t estimated_rows = 0;
};

// One batch of differences, each confirmed on the other side by equality.
struct Found {
    std::vector<Key> missing;   // only in the source
    std::vector<Key> extra;     // only in the destination
    std::vector<Key> changed;   // in both, the rows differ (rows mode)
    std::vector<Key> in_flight; // missing or changed, but the source row is at or after
                                // the saved mark: the next sync brings it
};

struct Totals {
    std::int64_t source_rows = 0;
    std::int64_t dest_rows = 0;
    std::int64_t ranges = 0;       // ranges compared, every level
    std::int64_t rows_fetched = 0; // rows (or keys) fetched from small differing ranges
};

// Compares src and dst. `on_counts` is called once both sides' row counts are known
// and before the first batch (the delete guard needs them); `on_found` for every
// batch with a difference. Either may throw to stop the comparison.
Totals compare(const Side &src, const Side &dst, const Options &options,
               const std::function<void(const Totals &)> &on_counts,
               const std::function<void(const Found &)> &on_found);

// `(s.k1, s.k2) IN (SELECT * FROM unnest($n::t1[], $m::t2[]))` for `keys`, the arrays
// appended to `params`: how the callers delete, mark or re-copy the keys found.
std::string key_in(const Side &side, const std::string &alias, const std::vector<Key> &keys,
                   pg::Params &params);

// The same test for COPY, which takes no parameters: the arrays are stored with
// set_config(…, true) through bound parameters and read back by current_setting().
std::string key_in_for_copy(const Side &side, const std::vector<Key> &keys);

// "42" or "(7, abc)", for messages.
std::string describe(const Key &key);

// Typed array parameters (`$1::int8[]`) are passed as text::array_literal().
using text::array_literal;

} // namespace pgincr::diff
