#include "diff/range_diff.hpp"

#include "util/log.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <unordered_map>

namespace pgincr::sql {
extern const std::string_view diff_ranges;
extern const std::string_view diff_split;
extern const std::string_view diff_rows;
extern const std::string_view diff_lookup;
extern const std::string_view diff_sample;
extern const std::string_view diff_buckets;
extern const std::string_view diff_bucket_rows;
} // namespace pgincr::sql

namespace pgincr::diff {

namespace {

// Measured on the benchmark's 2,000,000-row table (BENCHMARKS.md): ranges of about
// 2,000 rows keep the per-range overhead within a few percent of a plain index-only
// count, and leave few rows to re-read when a range differs.
constexpr std::int64_t range_rows = 2000;
constexpr std::int64_t max_ranges = 16384;
constexpr std::int64_t leaf_rows = 256;    // a range this small has its rows fetched
constexpr std::int64_t fanout = 16;        // sub-ranges per differing range
constexpr std::size_t batch_ranges = 1024; // ranges per aggregate or split statement
constexpr std::int64_t batch_rows = 16384; // rows per fetch of small ranges
constexpr int max_depth = 8;

struct Range {
    std::optional<Key> lo, hi; // [lo, hi); nullopt: unbounded
    std::int64_t n_src = 0, n_dst = 0;
    std::int64_t h_src = 0, h_dst = 0;
    bool differs() const { return n_src != n_dst || h_src != h_dst; }
    std::int64_t larger() const { return std::max(n_src, n_dst); }
};

using text::fill;
using text::replace_all;

std::string join(const std::vector<std::string> &parts, const std::string &sep) {
    std::string out;
    for (const auto &p : parts)
        out += (out.empty() ? "" : sep) + p;
    return out;
}

std::string cols(const Side &side, const std::string &alias) {
    std::vector<std::string> out;
    for (const auto &c : side.key_cols)
        out.push_back(alias + "." + c);
    return join(out, ", ");
}

std::string key_text(const Side &side, const std::string &alias) {
    std::vector<std::string> out;
    for (const auto &c : side.key_cols)
        out.push_back(alias + "." + c + "::pg_catalog.text");
    return join(out, ", ");
}

std::string row_text(const Side &side, const std::string &alias) {
    std::vector<std::string> out;
    for (const auto &c : side.row_cols)
        out.push_back(replace_all(c, "%A%", alias));
    return "ROW(" + join(out, ", ") + ")::pg_catalog.text";
}

std::string tuple(const std::vector<std::string> &items) {
    return items.size() == 1 ? items[0] : "(" + join(items, ", ") + ")";
}

// Serialized for hashing: length-prefixed, so that no two keys collide.
std::string serialize(const Key &key) {
    std::string out;
    for (const auto &v : key)
        out += v ? fmt::format("{}:{}", v->size(), *v) : std::string("N");
    return out;
}

struct Binder {
    pg::Params params;
    std::string add(std::string value, const std::string &type) {
        params.emplace_back(std::move(value));
        return fmt::format("${}::{}", params.size(), type);
    }
};

// One statement over many ranges: one arm per shape of range (bounded below, above,
// both, neither), each an unnest() of typed arrays, joined by UNION ALL. `extra`
// adds a per-range array column (the split's step).
struct Arms {
    std::string sql;
    pg::Params params;
};

Arms build_arms(const Side &side, std::string_view tmpl, const std::vector<Range> &ranges,
                std::size_t begin, std::size_t end,
                const std::vector<std::pair<std::string, std::string>> &parts,
                const std::vector<std::int64_t> *steps = nullptr) {
    Binder b;
    std::vector<std::string> arms;
    std::size_t nk = side.key_cols.size();
    for (int shape = 0; shape < 4; ++shape) {
        bool has_lo = shape & 1, has_hi = shape & 2;
        std::vector<std::optional<std::string>> idx, step;
        std::vector<std::vector<std::optional<std::string>>> lo(nk), hi(nk);
        for (std::size_t i = begin; i < end; ++i) {
            const auto &r = ranges[i];
            if (r.lo.has_value() != has_lo || r.hi.has_value() != has_hi)
                continue;
            idx.emplace_back(std::to_string(i));
            if (steps)
                step.emplace_back(std::to_string((*steps)[i]));
            for (std::size_t k = 0; k < nk; ++k) {
                if (has_lo)
                    lo[k].push_back((*r.lo)[k]);
                if (has_hi)
                    hi[k].push_back((*r.hi)[k]);
            }
        }
        if (idx.empty())
            continue;
        std::vector<std::string> arrays{b.add(array_literal(idx), "pg_catalog.int8[]")};
        std::vector<std::string> names{"_i"};
        if (steps) {
            arrays.push_back(b.add(array_literal(step), "pg_catalog.int8[]"));
            names.emplace_back("_step");
        }
        std::vector<std::string> lo_refs, hi_refs;
        for (std::size_t k = 0; k < nk; ++k) {
            if (has_lo) {
                arrays.push_back(b.add(array_literal(lo[k]), side.key_types[k] + "[]"));
                names.push_back(fmt::format("_lo{}", k + 1));
                lo_refs.push_back("r." + names.back());
            }
        }
        for (std::size_t k = 0; k < nk; ++k) {
            if (has_hi) {
                arrays.push_back(b.add(array_literal(hi[k]), side.key_types[k] + "[]"));
                names.push_back(fmt::format("_hi{}", k + 1));
                hi_refs.push_back("r." + names.back());
            }
        }
        std::vector<std::string> tests;
        std::vector<std::string> key;
        for (const auto &c : side.key_cols)
            key.push_back("t." + c);
        if (has_lo)
            tests.push_back(fmt::format("{} >= {}", tuple(key), tuple(lo_refs)));
        if (has_hi)
            tests.push_back(fmt::format("{} < {}", tuple(key), tuple(hi_refs)));
        // Bounded ranges leave out keys with a NULL (a row comparison with NULL is never
        // true); the unbounded one must too: those rows are compared apart.
        if (!has_lo && !has_hi)
            tests.push_back(fmt::format("ROW({}) IS NOT NULL", join(key, ", ")));
        if (!side.where.empty())
            tests.push_back("(" + side.where + ")");
        auto v = parts;
        v.emplace_back("ARRAYS", join(arrays, ", "));
        v.emplace_back("COLUMNS", join(names, ", "));
        v.emplace_back("RANGE", join(tests, " AND "));
        arms.push_back(fill(tmpl, v));
    }
    return {join(arms, "\nUNION ALL\n"), std::move(b.params)};
}

Key row_key(const pg::Result &res, int row, int first, std::size_t nk) {
    Key k;
    for (std::size_t c = 0; c < nk; ++c)
        k.push_back(res.optional(row, first + static_cast<int>(c)));
    return k;
}

class Engine {
  public:
    Engine(const Side &src, const Side &dst, const Options &o) : src_(src), dst_(dst), o_(o) {}

    Totals run(const std::function<void(const Totals &)> &on_counts,
               const std::function<void(const Found &)> &on_found) {
        if (o_.hash_buckets)
            return run_buckets(on_counts, on_found);
        auto level = first_ranges();
        aggregate(level);
        for (const auto &r : level) {
            totals_.source_rows += r.n_src;
            totals_.dest_rows += r.n_dst;
        }
        if (on_counts)
            on_counts(totals_);
        descend(std::move(level), 0, on_found);
        log::debug("", "compare done: {} range(s), {} row(s) fetched ({:.3f}s)", totals_.ranges,
                   totals_.rows_fetched, seconds());
        return totals_;
    }

  private:
    // Depth first, a batch of ranges at a time: memory holds at most one batch of
    // sub-ranges per level, however many ranges differ (every row of a large table,
    // say).
    void descend(std::vector<Range> level, int depth,
                 const std::function<void(const Found &)> &on_found) {
        std::vector<Range> leaves, splits;
        std::size_t compared = level.size();
        for (auto &r : level) {
            if (!r.differs())
                continue;
            bool one_sided = std::min(r.n_src, r.n_dst) == 0;
            bool small = r.larger() <= (one_sided ? leaf_rows * fanout : leaf_rows);
            (small || depth >= max_depth ? leaves : splits).push_back(std::move(r));
        }
        level.clear();
        log::debug("", "compare level {}: {} range(s), {} differ: {} fetched, {} split ({:.3f}s)",
                   depth + 1, compared, leaves.size() + splits.size(), leaves.size(), splits.size(),
                   seconds());
        fetch_leaves(leaves, on_found);
        leaves.clear();
        for (std::size_t begin = 0; begin < splits.size(); begin += batch_ranges / fanout) {
            std::size_t end = std::min(splits.size(), begin + batch_ranges / fanout);
            std::vector<Range> chunk(std::make_move_iterator(splits.begin() + begin),
                                     std::make_move_iterator(splits.begin() + end));
            auto children = split(chunk);
            aggregate(children);
            descend(std::move(children), depth + 1, on_found);
        }
    }

    std::string bucket_expr(const Side &side, std::int64_t n) const {
        std::string text = side.key_cols.size() == 1
                               ? "t." + side.key_cols[0] + "::pg_catalog.text"
                               : "ROW(" + cols(side, "t") + ")::pg_catalog.text";
        return fmt::format("((pg_catalog.hashtext({}) & 2147483647) % {})::pg_catalog.int8", text,
                           n);
    }

    std::string not_null_where(const Side &side) const {
        std::string w = fmt::format("ROW({}) IS NOT NULL", cols(side, "t"));
        return side.where.empty() ? w : w + " AND (" + side.where + ")";
    }

    Totals run_buckets(const std::function<void(const Totals &)> &on_counts,
                       const std::function<void(const Found &)> &on_found) {
        std::int64_t n = estimate().ranges;
        auto sql_for = [&](const Side &side) {
            return text::fill(sql::diff_buckets, {{"BUCKET", bucket_expr(side, n)},
                                                  {"HASH", hash_expr(side)},
                                                  {"TABLE", side.relation},
                                                  {"WHERE", not_null_where(side)}});
        };
        auto [rs, rd] = pg::exec_both(*src_.conn, sql_for(src_), {}, *dst_.conn, sql_for(dst_), {},
                                      pg::Expect::rows);
        std::map<std::int64_t, Range> buckets; // only the counts and hashes are used
        for (int i = 0; i < rs.rows(); ++i) {
            auto &b = buckets[rs.integer(i, 0)];
            b.n_src = rs.integer(i, 1);
            b.h_src = rs.integer(i, 2);
            totals_.source_rows += b.n_src;
        }
        for (int i = 0; i < rd.rows(); ++i) {
            auto &b = buckets[rd.integer(i, 0)];
            b.n_dst = rd.integer(i, 1);
            b.h_dst = rd.integer(i, 2);
            totals_.dest_rows += b.n_dst;
        }
        totals_.ranges += n;
        if (on_counts)
            on_counts(totals_);
        std::vector<std::int64_t> batch;
        std::int64_t batch_size = 0;
        auto flush = [&] {
            if (batch.empty())
                return;
            compare_buckets(n, batch, on_found);
            batch.clear();
            batch_size = 0;
        };
        for (const auto &[id, b] : buckets) {
            if (!b.differs())
                continue;
            if (!batch.empty() && batch_size + b.larger() > batch_rows)
                flush();
            batch.push_back(id);
            batch_size += b.larger();
        }
        flush();
        log::debug("",
                   "compare by key hash (the servers order the key differently): {} "
                   "bucket(s), {} row(s) fetched ({:.3f}s)",
                   n, totals_.rows_fetched, seconds());
        return totals_;
    }

    void compare_buckets(std::int64_t n, const std::vector<std::int64_t> &ids,
                         const std::function<void(const Found &)> &on_found) {
        std::vector<std::optional<std::string>> list;
        for (auto id : ids)
            list.emplace_back(std::to_string(id));
        auto sql_for = [&](const Side &side, pg::Params &params) {
            params.emplace_back(array_literal(list));
            auto sql = text::fill(sql::diff_bucket_rows, {{"BUCKET", bucket_expr(side, n)},
                                                          {"KEYTEXT", key_text(side, "s")},
                                                          {"ROWHASH", row_hash(side, "s")},
                                                          {"TABLE", side.relation},
                                                          {"WHERE", not_null_where(side)}});
            return replace_all(sql, "%INFLIGHT%",
                               &side == &src_ ? in_flight(side, "s", params) : "false");
        };
        pg::Params ps, pd;
        auto a = sql_for(src_, ps);
        auto b = sql_for(dst_, pd);
        auto [rs, rd] = pg::exec_both(*src_.conn, a, ps, *dst_.conn, b, pd, pg::Expect::rows);
        totals_.rows_fetched += rs.rows() + rd.rows();
        compare_rows(rs, rd, on_found);
    }

    double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    }
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    const Side &src_;
    const Side &dst_;
    Options o_;
    Totals totals_;

    std::string hash_expr(const Side &side) const {
        if (o_.compare == Compare::rows)
            return "pg_catalog.hashtext(" + row_text(side, "t") + ")";
        if (o_.integer_key)
            return "pg_catalog.hashint8(t." + side.key_cols[0] + "::pg_catalog.int8)";
        if (side.key_cols.size() == 1)
            return "pg_catalog.hashtext(t." + side.key_cols[0] + "::pg_catalog.text)";
        return "pg_catalog.hashtext(ROW(" + cols(side, "t") + ")::pg_catalog.text)";
    }

    std::string row_hash(const Side &side, const std::string &alias) const {
        return o_.compare == Compare::rows ? "pg_catalog.md5(" + row_text(side, alias) + ")"
                                           : std::string("NULL::pg_catalog.text");
    }

    std::string in_flight(const Side &side, const std::string &alias, pg::Params &params) const {
        if (o_.compare != Compare::rows || side.in_flight.empty())
            return "false";
        params.push_back(side.mark);
        return replace_all(replace_all(side.in_flight, "%A%", alias), "%MARK%",
                           fmt::format("${}", params.size()));
    }

    // Bounds of the first ranges, from both sides' extremes (integer keys) or from a
    // page sample of the fuller side.
    // Both sides' row and page estimates, and how many first ranges they make.
    struct Estimate {
        pg::Result src, dst; // reltuples, relpages
        std::int64_t ranges = 1;
    };
    Estimate estimate() {
        std::string sql = "SELECT greatest(c.reltuples, 0)::pg_catalog.int8, c.relpages "
                          "FROM pg_catalog.pg_class c WHERE c.oid = $1::pg_catalog.regclass";
        auto [es, ed] = pg::exec_both(*src_.conn, sql, {src_.relation}, *dst_.conn, sql,
                                      {dst_.relation}, pg::Expect::one_row);
        std::int64_t rows = std::max({es.integer(0, 0), ed.integer(0, 0), o_.estimated_rows});
        std::int64_t n = std::clamp<std::int64_t>(rows / range_rows, 1, max_ranges);
        return {std::move(es), std::move(ed), n};
    }

    std::vector<Range> first_ranges() {
        auto e = estimate();
        std::int64_t n = e.ranges;
        std::vector<Key> bounds =
            o_.integer_key ? integer_bounds(n) : sampled_bounds(n, e.dst, e.src);
        std::vector<Range> out;
        std::optional<Key> lo;
        for (auto &b : bounds) {
            out.push_back(Range{lo, b});
            lo = std::move(b);
        }
        out.push_back(Range{lo, std::nullopt});
        return out;
    }

    std::vector<Key> integer_bounds(std::int64_t n) {
        auto sql_for = [](const Side &s) {
            return fmt::format("SELECT pg_catalog.min(t.{0})::pg_catalog.int8, "
                               "pg_catalog.max(t.{0})::pg_catalog.int8 FROM ONLY {1} AS t{2}",
                               s.key_cols[0], s.relation,
                               s.where.empty() ? "" : " WHERE " + s.where);
        };
        auto [a, b] = pg::exec_both(*src_.conn, sql_for(src_), {}, *dst_.conn, sql_for(dst_), {},
                                    pg::Expect::one_row);
        std::optional<std::int64_t> lo, hi;
        for (const auto *r : {&a, &b}) {
            if (r->is_null(0, 0))
                continue;
            auto l = r->integer(0, 0), h = r->integer(0, 1);
            lo = lo ? std::min(*lo, l) : l;
            hi = hi ? std::max(*hi, h) : h;
        }
        std::vector<Key> out;
        if (!lo || n <= 1)
            return out;
        // Unsigned arithmetic: the span of two int8 values can exceed INT64_MAX.
        auto span = static_cast<std::uint64_t>(*hi) - static_cast<std::uint64_t>(*lo);
        std::uint64_t width = span / static_cast<std::uint64_t>(n) + 1;
        for (std::uint64_t off = width; off <= span && off >= width; off += width)
            out.push_back(Key{
                std::to_string(static_cast<std::int64_t>(static_cast<std::uint64_t>(*lo) + off))});
        return out;
    }

    std::vector<Key> sampled_bounds(std::int64_t n, const pg::Result &ed, const pg::Result &es) {
        if (n <= 1)
            return {};
        bool use_dst = ed.integer(0, 0) >= es.integer(0, 0);
        const Side &side = use_dst ? dst_ : src_;
        std::int64_t rows = std::max<std::int64_t>(1, (use_dst ? ed : es).integer(0, 0));
        std::int64_t pages = std::max<std::int64_t>(1, (use_dst ? ed : es).integer(0, 1));
        // Enough whole pages for every range to start in a different one, even when the
        // table's order follows the key's.
        double pct = std::min(
            100.0, 100.0 * std::max(4.0 * static_cast<double>(n) / static_cast<double>(rows),
                                    static_cast<double>(n) / static_cast<double>(pages)));
        std::vector<std::string> skey;
        for (const auto &c : side.key_cols)
            skey.push_back("s." + c);
        auto sql = fill(sql::diff_sample, {{"KEYTEXT", key_text(side, "s")},
                                           {"TABLE", side.relation},
                                           {"PCT", fmt::format("{:.4f}", pct)},
                                           {"SKEY", join(skey, ", ")}});
        auto res = side.conn->exec(sql, pg::Expect::rows);
        std::vector<Key> out;
        std::int64_t step = std::max<std::int64_t>(1, res.rows() / n);
        std::size_t nk = side.key_cols.size();
        for (int i = static_cast<int>(step); i < res.rows(); i += static_cast<int>(step)) {
            auto k = row_key(res, i, 0, nk);
            if (std::any_of(k.begin(), k.end(), [](const auto &v) { return !v; }))
                continue; // a NULL cannot bound a range
            if (!out.empty() && out.back() == k)
                continue;
            out.push_back(std::move(k));
        }
        return out;
    }

    void aggregate(std::vector<Range> &ranges) {
        for (std::size_t begin = 0; begin < ranges.size(); begin += batch_ranges) {
            std::size_t end = std::min(ranges.size(), begin + batch_ranges);
            auto a = build_arms(src_, sql::diff_ranges, ranges, begin, end,
                                {{"HASH", hash_expr(src_)}, {"TABLE", src_.relation}});
            auto b = build_arms(dst_, sql::diff_ranges, ranges, begin, end,
                                {{"HASH", hash_expr(dst_)}, {"TABLE", dst_.relation}});
            auto [rs, rd] = pg::exec_both(*src_.conn, a.sql, a.params, *dst_.conn, b.sql, b.params,
                                          pg::Expect::rows);
            for (int i = 0; i < rs.rows(); ++i) {
                auto &r = ranges[static_cast<std::size_t>(rs.integer(i, 0))];
                r.n_src = rs.integer(i, 1);
                r.h_src = rs.integer(i, 2);
            }
            for (int i = 0; i < rd.rows(); ++i) {
                auto &r = ranges[static_cast<std::size_t>(rd.integer(i, 0))];
                r.n_dst = rd.integer(i, 1);
                r.h_dst = rd.integer(i, 2);
            }
            totals_.ranges += static_cast<std::int64_t>(end - begin);
        }
    }

    // A bounded range of an integer key splits by value, with no statement. Unsigned
    // arithmetic: the span of two int8 values can exceed INT64_MAX.
    bool by_value(const Range &r) const {
        if (!o_.integer_key || !r.lo || !r.hi || !(*r.lo)[0] || !(*r.hi)[0])
            return false;
        auto lo = std::stoll(*(*r.lo)[0]), hi = std::stoll(*(*r.hi)[0]);
        return hi > lo && static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo) >=
                              static_cast<std::uint64_t>(fanout);
    }
    static void split_by_value(const Range &r, std::vector<Range> &out) {
        auto lo = static_cast<std::uint64_t>(std::stoll(*(*r.lo)[0]));
        auto span = static_cast<std::uint64_t>(std::stoll(*(*r.hi)[0])) - lo;
        auto n = static_cast<std::uint64_t>(fanout);
        std::uint64_t width = span / n + (span % n != 0);
        std::optional<Key> from = r.lo;
        for (std::uint64_t off = width; off < span; off += width) {
            Key k{std::to_string(static_cast<std::int64_t>(lo + off))};
            out.push_back(Range{from, k});
            from = std::move(k);
            if (off > span - width)
                break;
        }
        out.push_back(Range{from, r.hi});
    }

    // Sub-ranges at every step-th key of the side that holds more rows (or, for an
    // integer key, at equal steps of its value).
    std::vector<Range> split(const std::vector<Range> &ranges) {
        std::vector<Range> out;
        for (std::size_t begin = 0; begin < ranges.size(); begin += batch_ranges) {
            std::size_t end = std::min(ranges.size(), begin + batch_ranges);
            std::vector<Range> on_src, on_dst;
            std::vector<std::int64_t> st_src, st_dst;
            std::vector<std::size_t> from_src, from_dst;
            for (std::size_t i = begin; i < end; ++i) {
                const auto &r = ranges[i];
                if (by_value(r)) {
                    split_by_value(r, out);
                    continue;
                }
                bool use_src = r.n_src > r.n_dst;
                auto step = (r.larger() + fanout - 1) / fanout;
                (use_src ? on_src : on_dst).push_back(r);
                (use_src ? st_src : st_dst).push_back(step);
                (use_src ? from_src : from_dst).push_back(i);
            }
            // Per range, its bounds by position in the range.
            std::map<std::size_t, std::map<std::int64_t, Key>> bounds;
            auto collect = [&](const pg::Result &res, const std::vector<std::size_t> &from,
                               std::size_t nk) {
                for (int i = 0; i < res.rows(); ++i)
                    bounds[from[static_cast<std::size_t>(res.integer(i, 0))]].emplace(
                        res.integer(i, 1), row_key(res, i, 2, nk));
            };
            auto sql_for = [&](const Side &side, const std::vector<Range> &rs,
                               const std::vector<std::int64_t> &steps) {
                return build_arms(side, sql::diff_split, rs, 0, rs.size(),
                                  {{"KEYTEXT", key_text(side, "s")},
                                   {"KEY", cols(side, "t")},
                                   {"TABLE", side.relation}},
                                  &steps);
            };
            if (!on_src.empty() && !on_dst.empty()) {
                auto a = sql_for(src_, on_src, st_src);
                auto b = sql_for(dst_, on_dst, st_dst);
                auto [rs, rd] = pg::exec_both(*src_.conn, a.sql, a.params, *dst_.conn, b.sql,
                                              b.params, pg::Expect::rows);
                collect(rs, from_src, src_.key_cols.size());
                collect(rd, from_dst, dst_.key_cols.size());
            } else if (!on_src.empty()) {
                auto a = sql_for(src_, on_src, st_src);
                collect(src_.conn->exec(a.sql, a.params, pg::Expect::rows), from_src,
                        src_.key_cols.size());
            } else if (!on_dst.empty()) {
                auto b = sql_for(dst_, on_dst, st_dst);
                collect(dst_.conn->exec(b.sql, b.params, pg::Expect::rows), from_dst,
                        dst_.key_cols.size());
            }
            for (std::size_t i = begin; i < end; ++i) {
                const auto &r = ranges[i];
                if (by_value(r))
                    continue;
                auto lo = r.lo;
                for (auto &[_, b] : bounds[i]) {
                    if (std::any_of(b.begin(), b.end(), [](const auto &v) { return !v; }))
                        continue;
                    out.push_back(Range{lo, b});
                    lo = std::move(b);
                }
                out.push_back(Range{lo, r.hi});
            }
        }
        return out;
    }

    struct Row {
        Key key;
        std::optional<std::string> hash;
        bool in_flight = false;
    };

    static std::vector<Row> rows_of(const pg::Result &res, int first, std::size_t nk) {
        std::vector<Row> out;
        out.reserve(static_cast<std::size_t>(res.rows()));
        for (int i = 0; i < res.rows(); ++i) {
            int c = first + static_cast<int>(nk);
            out.push_back(
                Row{row_key(res, i, first, nk), res.optional(i, c), res.boolean(i, c + 1)});
        }
        return out;
    }

    void fetch_leaves(const std::vector<Range> &leaves,
                      const std::function<void(const Found &)> &on_found) {
        // Only a range that splitting could not narrow is this large: the servers sort
        // the key differently although their collation settings match (another glibc
        // or ICU version). Fetching it whole would not bound memory.
        for (const auto &r : leaves)
            if (r.larger() > 4 * batch_rows)
                throw Error(fmt::format(
                    "the compare could not narrow a range of {} rows: the two servers sort "
                    "this table's key differently although its collation is the same "
                    "(different glibc or ICU versions?); compare the order of `SELECT ... "
                    "ORDER BY` on both, and REINDEX where the collation version changed",
                    r.larger()));
        std::size_t begin = 0;
        while (begin < leaves.size()) {
            std::size_t end = begin;
            std::int64_t rows = 0;
            while (end < leaves.size() &&
                   (end == begin || rows + leaves[end].larger() <= batch_rows)) {
                rows += leaves[end].n_src + leaves[end].n_dst;
                ++end;
            }
            compare_batch(leaves, begin, end, on_found);
            begin = end;
        }
    }

    void compare_batch(const std::vector<Range> &leaves, std::size_t begin, std::size_t end,
                       const std::function<void(const Found &)> &on_found) {
        auto a = build_arms(src_, sql::diff_rows, leaves, begin, end,
                            {{"KEYTEXT", key_text(src_, "s")},
                             {"ROWHASH", row_hash(src_, "s")},
                             {"TABLE", src_.relation}});
        a.sql = replace_all(a.sql, "%INFLIGHT%", in_flight(src_, "s", a.params));
        auto b = build_arms(dst_, sql::diff_rows, leaves, begin, end,
                            {{"KEYTEXT", key_text(dst_, "s")},
                             {"ROWHASH", row_hash(dst_, "s")},
                             {"INFLIGHT", "false"},
                             {"TABLE", dst_.relation}});
        auto [rs, rd] = pg::exec_both(*src_.conn, a.sql, a.params, *dst_.conn, b.sql, b.params,
                                      pg::Expect::rows);
        totals_.rows_fetched += rs.rows() + rd.rows();
        compare_rows(rs, rd, on_found);
    }

    // Both sides' rows of the same ranges (or buckets), first column the range's: what
    // differs, confirmed by lookups, goes to on_found.
    void compare_rows(const pg::Result &rs, const pg::Result &rd,
                      const std::function<void(const Found &)> &on_found) {
        std::unordered_map<std::string, Row> theirs;
        for (auto &r : rows_of(rd, 1, dst_.key_cols.size()))
            theirs.emplace(serialize(r.key), std::move(r));
        Found found;
        std::vector<Row> only_src;
        for (auto &r : rows_of(rs, 1, src_.key_cols.size())) {
            auto it = theirs.find(serialize(r.key));
            if (it == theirs.end()) {
                only_src.push_back(std::move(r));
                continue;
            }
            if (it->second.hash != r.hash)
                (r.in_flight ? found.in_flight : found.changed).push_back(r.key);
            theirs.erase(it);
        }
        std::vector<Row> only_dst;
        for (auto &[_, r] : theirs)
            only_dst.push_back(std::move(r));
        confirm(only_src, only_dst, found);
        if (!found.missing.empty() || !found.extra.empty() || !found.changed.empty() ||
            !found.in_flight.empty())
            on_found(found);
    }

    // Looks up one side's lone keys on the other side, by equality.
    void confirm(const std::vector<Row> &only_src, const std::vector<Row> &only_dst, Found &found) {
        auto lookup_sql = [&](const Side &side, const std::vector<Row> &rows, pg::Params &params) {
            std::vector<Key> keys;
            for (const auto &r : rows)
                keys.push_back(r.key);
            auto match = key_in(side, "s", keys, params);
            std::string sql =
                fill(sql::diff_lookup,
                     {{"KEYTEXT", key_text(side, "s")},
                      {"ROWHASH", row_hash(side, "s")},
                      {"TABLE", side.relation},
                      {"MATCH", match},
                      {"WHERE", side.where.empty() ? "" : " AND (" + side.where + ")"}});
            return replace_all(sql, "%INFLIGHT%",
                               &side == &src_ ? in_flight(side, "s", params) : "false");
        };
        pg::Params pd, ps;
        pg::Result on_dst, on_src;
        if (!only_src.empty() && !only_dst.empty()) {
            auto qd = lookup_sql(dst_, only_src, pd);
            auto qs = lookup_sql(src_, only_dst, ps);
            std::tie(on_dst, on_src) =
                pg::exec_both(*dst_.conn, qd, pd, *src_.conn, qs, ps, pg::Expect::rows);
        } else if (!only_src.empty()) {
            auto qd = lookup_sql(dst_, only_src, pd);
            on_dst = dst_.conn->exec(qd, pd, pg::Expect::rows);
        } else if (!only_dst.empty()) {
            auto qs = lookup_sql(src_, only_dst, ps);
            on_src = src_.conn->exec(qs, ps, pg::Expect::rows);
        }
        std::unordered_map<std::string, Row> dst_found, src_found;
        for (auto &r : rows_of(on_dst, 0, dst_.key_cols.size()))
            dst_found.emplace(serialize(r.key), std::move(r));
        for (auto &r : rows_of(on_src, 0, src_.key_cols.size()))
            src_found.emplace(serialize(r.key), std::move(r));
        for (const auto &r : only_src) {
            auto it = dst_found.find(serialize(r.key));
            if (it != dst_found.end() && it->second.hash == r.hash)
                continue;
            if (r.in_flight)
                found.in_flight.push_back(r.key);
            else
                (it == dst_found.end() ? found.missing : found.changed).push_back(r.key);
        }
        for (const auto &r : only_dst) {
            auto it = src_found.find(serialize(r.key));
            if (it == src_found.end())
                found.extra.push_back(r.key);
            else if (it->second.hash != r.hash)
                (it->second.in_flight ? found.in_flight : found.changed).push_back(r.key);
        }
    }
};

std::vector<std::vector<std::optional<std::string>>> columns_of(const std::vector<Key> &keys,
                                                                std::size_t nk) {
    std::vector<std::vector<std::optional<std::string>>> out(nk);
    for (const auto &k : keys)
        for (std::size_t c = 0; c < nk; ++c)
            out[c].push_back(k[c]);
    return out;
}

} // namespace

Totals compare(const Side &src, const Side &dst, const Options &options,
               const std::function<void(const Totals &)> &on_counts,
               const std::function<void(const Found &)> &on_found) {
    // The same value must print the same text on both servers, whatever their roles
    // and databases set; LOCAL ends with the callers' transactions.
    const char *pin = "SELECT pg_catalog.set_config('TimeZone', 'UTC', true), "
                      "pg_catalog.set_config('bytea_output', 'hex', true), "
                      "pg_catalog.set_config('lc_monetary', 'C', true), "
                      // The planner cannot know that a range holds a few thousand rows, not
                      // its default estimate: costs cross the JIT thresholds, and compiling
                      // took longer than the statements (measured in BENCHMARKS.md).
                      "pg_catalog.set_config('jit', 'off', true)";
    pg::exec_both(*src.conn, pin, {}, *dst.conn, pin, {}, pg::Expect::rows);
    Engine engine(src, dst, options);
    return engine.run(on_counts, on_found);
}

std::string key_in(const Side &side, const std::string &alias, const std::vector<Key> &keys,
                   pg::Params &params) {
    auto columns = columns_of(keys, side.key_cols.size());
    std::vector<std::string> arrays, refs;
    for (std::size_t c = 0; c < columns.size(); ++c) {
        params.emplace_back(array_literal(columns[c]));
        arrays.push_back(fmt::format("${}::{}[]", params.size(), side.key_types[c]));
        refs.push_back(alias + "." + side.key_cols[c]);
    }
    return fmt::format("{} IN (SELECT * FROM unnest({}))", tuple(refs), join(arrays, ", "));
}

std::string key_in_for_copy(const Side &side, const std::vector<Key> &keys) {
    auto columns = columns_of(keys, side.key_cols.size());
    std::vector<std::string> arrays;
    for (std::size_t c = 0; c < columns.size(); ++c) {
        std::string name = fmt::format("pgincr.keys_{}", c + 1);
        side.conn->exec("SELECT pg_catalog.set_config($1, $2, true)",
                        {name, array_literal(columns[c])}, pg::Expect::value);
        arrays.push_back(
            fmt::format("pg_catalog.current_setting('{}')::{}[]", name, side.key_types[c]));
    }
    return fmt::format("{} IN (SELECT * FROM unnest({}))", tuple(side.key_cols),
                       join(arrays, ", "));
}

std::string describe(const Key &key) {
    std::vector<std::string> parts;
    for (const auto &v : key)
        parts.push_back(v.value_or("NULL"));
    return key.size() == 1 ? parts[0] : "(" + join(parts, ", ") + ")";
}

} // namespace pgincr::diff
