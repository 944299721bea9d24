#include "cdc/apply.hpp"

#include "util/hash.hpp"
#include "util/log.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pgincr::sql {
extern const std::string_view cdc_conflicts;
extern const std::string_view cdc_delete;
extern const std::string_view cdc_upsert;
} // namespace pgincr::sql

namespace pgincr::cdc {

namespace {

constexpr std::size_t copy_chunk = 64 * 1024;
// 8 bytes a key: a 1,000,000-row transaction costs 8 MB of them.
constexpr std::size_t direct_keys_max = 2'000'000;

bool same_key(const TableShape &shape, const Tuple &a, const Tuple &b) {
    for (auto k : shape.key)
        if (k >= a.size() || k >= b.size() || a[k].kind != b[k].kind || a[k].text != b[k].text)
            return false;
    return true;
}

// A quoted identifier's name, as to_jsonb spells the column.
std::string unquoted(const std::string &ident) {
    std::string out;
    for (std::size_t i = 1; i + 1 < ident.size(); ++i) {
        out += ident[i];
        if (ident[i] == '"')
            ++i;
    }
    return out;
}

} // namespace

void append_copy_field(std::string &out, const Value &value) {
    if (value.kind != Value::Kind::text) {
        out += "\\N";
        return;
    }
    for (char c : value.text) {
        switch (c) {
        case '\\':
            out += "\\\\";
            break;
        case '\t':
            out += "\\t";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        default:
            out += c;
        }
    }
}

TableApply::TableApply(pg::Connection &dst, TableShape shape)
    : dst_(dst), shape_(std::move(shape)) {
    std::vector<std::string> defs{"_pgincr_seq bigint", "_pgincr_op \"char\"", "_pgincr_u text"};
    // The key whose earlier images and destination row hold an unchanged value: the
    // row's own, or for an update that moved the row to a new key, the old one.
    for (std::size_t i = 0; i < shape_.key.size(); ++i)
        defs.push_back(fmt::format("_pgincr_src{} {}", i + 1, shape_.types[shape_.key[i]]));
    for (std::size_t i = 0; i < shape_.columns.size(); ++i)
        defs.push_back(shape_.columns[i] + " " + shape_.types[i]);
    // One staging table per shape and session: a table whose columns changed gets a
    // new one, never a stale layout.
    staging_ =
        dst_.quote_ident("pgincr_cdc_" + hash::sha256_hex(shape_.target + "|" +
                                                          fmt::format("{}", fmt::join(defs, ",")))
                                             .substr(0, 16));
    // Without an index while rows stream in: only a batch that takes the general way
    // builds it (apply_general), once its rows are all there.
    dst_.exec(
        fmt::format("CREATE TEMP TABLE IF NOT EXISTS {} ({})", staging_, fmt::join(defs, ", ")));
    dst_.exec(fmt::format("TRUNCATE {}", staging_));
}

TableApply::~TableApply() = default;

void TableApply::stage(char op, const Tuple &row, const Tuple *from) {
    if (row.size() != shape_.columns.size() || (from && from->size() != row.size()))
        throw Error(fmt::format("{}: a change has {} column(s), the table {}", shape_.target,
                                row.size(), shape_.columns.size()));
    buffer_ += fmt::format("{}\t{}\t", ++seq_, op);
    for (const auto &v : row) {
        bool unchanged = v.kind == Value::Kind::unchanged;
        buffer_ += unchanged ? '1' : '0';
        direct_ = direct_ && !unchanged;
    }
    if (op == 'D' || from)
        direct_ = false;
    if (direct_) {
        if (key_hashes_.size() >= direct_keys_max) {
            direct_ = false;
            std::vector<std::uint64_t>().swap(key_hashes_);
        } else {
            // Values as the source printed them: one key is one text (an update that
            // changes a key's bytes names the old key, and leaves this path above).
            std::uint64_t h = 1469598103934665603ULL;
            for (auto k : shape_.key) {
                h = (h ^ (row[k].kind == Value::Kind::text ? 1 : 2)) * 1099511628211ULL;
                for (unsigned char c : row[k].text)
                    h = (h ^ c) * 1099511628211ULL;
                h = (h ^ 0xff) * 1099511628211ULL;
            }
            key_hashes_.push_back(h);
        }
    }
    for (auto k : shape_.key) {
        buffer_ += '\t';
        append_copy_field(buffer_, (from ? *from : row)[k]);
    }
    for (const auto &v : row) {
        buffer_ += '\t';
        append_copy_field(buffer_, v);
    }
    buffer_ += '\n';
    ++staged_;
    if (buffer_.size() >= copy_chunk)
        flush_copy();
}

// One COPY for as long as this table's changes come in a row: the rows flow while the
// stream is read, with no round trip per chunk. It ends (end_copy) before any other
// statement on the session; memory stays at one chunk per table.
void TableApply::flush_copy() {
    if (buffer_.empty())
        return;
    if (!copy_) {
        std::vector<std::string> src;
        for (std::size_t i = 0; i < shape_.key.size(); ++i)
            src.push_back(fmt::format("_pgincr_src{}", i + 1));
        copy_ = std::make_unique<pg::CopyIn>(
            dst_, fmt::format("COPY {} (_pgincr_seq, _pgincr_op, _pgincr_u, {}, {}) FROM STDIN",
                              staging_, fmt::join(src, ", "), fmt::join(shape_.columns, ", ")));
    }
    copy_->put(buffer_.data(), buffer_.size());
    buffer_.clear();
}

void TableApply::end_copy() {
    flush_copy();
    if (copy_) {
        copy_->finish();
        copy_.reset();
    }
}

void TableApply::add(const Insert &m) {
    stage('I', m.row);
}

void TableApply::add(const Update &m) {
    auto key_of = [&](const Tuple &t) {
        std::string k;
        for (auto i : shape_.key)
            k += fmt::format("{}:{}", t[i].text.size(), t[i].text);
        return k;
    };
    bool unchanged = false;
    for (const auto &v : m.row)
        unchanged = unchanged || v.kind == Value::Kind::unchanged;
    // A row that moved to its key earlier in this batch has its unchanged values a key
    // further back, which the merge does not follow: refused rather than written NULL.
    if (unchanged && !moved_into_.empty() && moved_into_.count(key_of(m.old ? *m.old : m.row)))
        throw Error(fmt::format("{}: a row moved to a new key and then updated with a TOASTed "
                                "value unchanged in one batch; apply the batch in smaller parts",
                                shape_.target));
    if (!m.old || same_key(shape_, *m.old, m.row)) {
        stage('U', m.row);
        return;
    }
    // The row moved to a new key: its unchanged values are the old key's.
    moved_into_.insert(key_of(m.row));
    // The new image first, resolved from the old key, then the old key's delete.
    stage('U', m.row, &*m.old);
    stage('D', *m.old);
}

void TableApply::add(const Delete &m) {
    stage('D', m.old);
}

void TableApply::truncate() {
    end_copy();
    moved_into_.clear();
    dst_.exec(fmt::format("TRUNCATE {}", staging_));
    staged_ = 0;
    // What follows the TRUNCATE is all the batch holds of this table.
    direct_ = true;
    key_hashes_.clear();
    if (shape_.touched.empty()) {
        dst_.exec(fmt::format("TRUNCATE ONLY {}", shape_.target));
        return;
    }
    // target_wins, manual: a source TRUNCATE deletes every row, and as for a delete,
    // the rows whose key was changed in the destination stay, each a conflict.
    dst_.exec(fmt::format("LOCK TABLE ONLY {} IN SHARE ROW EXCLUSIVE MODE", shape_.target));
    std::vector<std::string> own;
    for (auto k : shape_.key)
        own.push_back("d." + shape_.columns[k]);
    std::string kept = touched_match(own);
    if (shape_.conflicts_table.empty())
        conflicts_ += dst_.exec(fmt::format("SELECT pg_catalog.count(*) FROM ONLY {} AS d WHERE {}",
                                            shape_.target, kept),
                                pg::Expect::value)
                          .integer(0, 0);
    else
        conflicts_ +=
            dst_.exec(fmt::format("INSERT INTO {} (policy, key, source_row, dest_row) "
                                  "SELECT 'manual', {}, NULL, pg_catalog.to_jsonb(d) "
                                  "FROM ONLY {} AS d WHERE {}",
                                  shape_.conflicts_table, key_json("d"), shape_.target, kept),
                      pg::Expect::command)
                .affected_rows();
    run(fmt::format("DELETE FROM ONLY {} AS d WHERE NOT {}", shape_.target, kept));
}

std::string TableApply::touched_match(const std::vector<std::string> &of) const {
    std::vector<std::string> eq;
    for (std::size_t j = 0; j < shape_.key.size(); ++j)
        eq.push_back(fmt::format("x.{} = {}", shape_.columns[shape_.key[j]], of[j]));
    return fmt::format("EXISTS (SELECT FROM {} AS x WHERE {})", shape_.touched,
                       fmt::join(eq, " AND "));
}

std::string TableApply::key_json(const std::string &alias) const {
    std::vector<std::string> pairs;
    for (auto k : shape_.key)
        pairs.push_back(fmt::format("{}, {}.{}", dst_.quote_literal(unquoted(shape_.columns[k])),
                                    alias, shape_.columns[k]));
    return fmt::format("pg_catalog.jsonb_build_object({})", fmt::join(pairs, ", "));
}

std::int64_t TableApply::hold_touched(std::vector<std::pair<std::string, std::string>> &v) {
    if (shape_.touched.empty()) {
        v.emplace_back("SPARE_UPSERT", "");
        v.emplace_back("SPARE_DELETE", "");
        return 0;
    }
    // Other sessions' writes wait until the batch commits: one committed between this
    // check and the upsert would otherwise be overwritten unseen.
    dst_.exec(fmt::format("LOCK TABLE ONLY {} IN SHARE ROW EXCLUSIVE MODE", shape_.target));
    std::vector<std::string> own, src;
    for (std::size_t j = 0; j < shape_.key.size(); ++j) {
        own.push_back("l." + shape_.columns[shape_.key[j]]);
        src.push_back(fmt::format("l._pgincr_src{}", j + 1));
    }
    // A row that moved to a new key reads its unchanged values from the old key's row:
    // when that one was changed in the destination, neither key changes.
    std::string upsert = fmt::format("({} OR {})", touched_match(own), touched_match(src));
    std::string del = touched_match(own);
    std::string record;
    if (shape_.conflicts_table.empty()) {
        record = "SELECT pg_catalog.count(*) FROM c";
    } else {
        std::vector<std::string> internal{"'_pgincr_seq'", "'_pgincr_op'", "'_pgincr_u'"}, unsent,
            match;
        for (std::size_t j = 0; j < shape_.key.size(); ++j) {
            internal.push_back(fmt::format("'_pgincr_src{}'", j + 1));
            match.push_back(fmt::format("d.{0} = c.{0}", shape_.columns[shape_.key[j]]));
        }
        for (std::size_t i = 0; i < shape_.columns.size(); ++i)
            unsent.push_back(fmt::format("CASE WHEN substr(c._pgincr_u, {}, 1) = '1' THEN {} END",
                                         i + 1, dst_.quote_literal(unquoted(shape_.columns[i]))));
        record = fmt::format(
            "INSERT INTO {} (policy, key, source_row, dest_row) SELECT 'manual', {}, CASE WHEN "
            "c._pgincr_op = 'D' THEN NULL ELSE pg_catalog.to_jsonb(c) - ARRAY[{}]::text[] - "
            "pg_catalog.array_remove(ARRAY[{}]::text[], NULL) END, pg_catalog.to_jsonb(d) FROM c "
            "LEFT JOIN ONLY {} AS d ON {}",
            shape_.conflicts_table, key_json("c"), fmt::join(internal, ", "),
            fmt::join(unsent, ", "), shape_.target, fmt::join(match, " AND "));
    }
    std::vector<std::string> key;
    for (auto k : shape_.key)
        key.push_back(shape_.columns[k]);
    std::string sql =
        text::fill(sql::cdc_conflicts, {{"KEY", fmt::format("{}", fmt::join(key, ", "))},
                                        {"STAGING", staging_},
                                        {"TOUCHED_L", upsert},
                                        {"RECORD", record}});
    auto held = shape_.conflicts_table.empty()
                    ? dst_.exec(sql, pg::Expect::value).integer(0, 0)
                    : dst_.exec(sql, pg::Expect::command).affected_rows();
    v.emplace_back("SPARE_UPSERT", " AND NOT " + upsert);
    v.emplace_back("SPARE_DELETE", " AND NOT " + del);
    return held;
}

void TableApply::reset_batch() {
    staged_ = 0;
    moved_into_.clear();
    direct_ = true;
    std::vector<std::uint64_t>().swap(key_hashes_);
}

// Every change is an insert or an update of its own key, each key once, every value
// sent: the staged rows are the rows, with no order to keep and nothing to resolve.
// False (nothing done) when the batch needs the general way.
bool TableApply::apply_direct(std::int64_t &upserted) {
    // newest_wins holds rows back and counts them: the general way does both.
    if (!direct_ || !shape_.newest.empty() || !shape_.touched.empty())
        return false;
    std::sort(key_hashes_.begin(), key_hashes_.end());
    if (std::adjacent_find(key_hashes_.begin(), key_hashes_.end()) != key_hashes_.end())
        return false; // a key twice (or two keys whose hashes meet)
    std::vector<std::string> key, sets;
    for (auto k : shape_.key)
        key.push_back(shape_.columns[k]);
    for (std::size_t i = 0; i < shape_.columns.size(); ++i)
        if (std::find(shape_.key.begin(), shape_.key.end(), i) == shape_.key.end())
            sets.push_back(fmt::format("{0} = EXCLUDED.{0}", shape_.columns[i]));
    // In key order: the destination's index and heap are then visited in order, which
    // more than paid for the sort on 200,000 scattered keys (BENCHMARKS.md).
    std::string sql = fmt::format(
        "INSERT INTO {0} AS d ({1}) SELECT {1} FROM {2} ORDER BY {3} ON CONFLICT ({3}) DO {4}",
        shape_.target, fmt::join(shape_.columns, ", "), staging_, fmt::join(key, ", "),
        sets.empty() ? std::string("NOTHING")
                     : fmt::format("UPDATE SET {}", fmt::join(sets, ", ")));
    // A key the hashes missed after all (ON CONFLICT meets a row twice: 21000) rolls
    // back to here and goes the general way.
    dst_.exec("SAVEPOINT pgincr_cdc_direct");
    dst_.exec("SET LOCAL work_mem = '64MB'"); // the sort in memory (merge_staged's reason)
    try {
        upserted = run(sql);
    } catch (const pg::PgError &e) {
        if (e.sqlstate() != "21000")
            throw;
        dst_.exec("ROLLBACK TO SAVEPOINT pgincr_cdc_direct");
        return false;
    }
    dst_.exec("RELEASE SAVEPOINT pgincr_cdc_direct");
    return true;
}

std::int64_t TableApply::finish() {
    end_copy();
    if (staged_ == 0)
        return 0;
    log::debug("", "[dest] {}: {} change(s) staged, applying them", shape_.target, staged_);
    std::int64_t applied = 0;
    bool direct = apply_direct(applied);
    if (!direct)
        applied = apply_general();
    log::debug("", "[dest] {}: {} change(s) {}", shape_.target, staged_,
               direct ? "inserted as staged (each key once, every value sent)"
                      : "applied by key and stream order");
    dst_.exec(fmt::format("TRUNCATE {}", staging_));
    reset_batch();
    return applied;
}

std::int64_t TableApply::apply_general() {
    std::vector<std::string> key, match, values, sets;
    for (auto k : shape_.key) {
        key.push_back(shape_.columns[k]);
        match.push_back(fmt::format("d.{0} = l.{0}", shape_.columns[k]));
    }
    // The last change per key and the earlier images of a key are found through it.
    std::string index = dst_.quote_ident(staging_.substr(1, staging_.size() - 2) + "_k");
    run(fmt::format("CREATE INDEX IF NOT EXISTS {} ON {} ({}, _pgincr_seq)", index, staging_,
                    fmt::join(key, ", ")));
    run(fmt::format("ANALYZE {}", staging_));
    // The upsert's per-column CASE subplans make its estimated cost large, and JIT then
    // spent 1.7 s compiling it for a 20,000-change batch that runs in milliseconds.
    dst_.exec("SET LOCAL jit = off");
    for (std::size_t i = 0; i < shape_.columns.size(); ++i) {
        const auto &c = shape_.columns[i];
        bool is_key = std::find(shape_.key.begin(), shape_.key.end(), i) != shape_.key.end();
        if (is_key) {
            values.push_back("l." + c);
            continue;
        }
        sets.push_back(fmt::format("{0} = EXCLUDED.{0}", c));
        std::vector<std::string> same_e, same_x;
        for (std::size_t j = 0; j < key.size(); ++j) {
            same_e.push_back(fmt::format("e.{} = l._pgincr_src{}", key[j], j + 1));
            same_x.push_back(fmt::format("x.{} = l._pgincr_src{}", key[j], j + 1));
        }
        std::string earlier = fmt::format(
            "FROM {} AS e WHERE {} AND e._pgincr_seq < l._pgincr_seq AND e._pgincr_op <> 'D' "
            "AND substr(e._pgincr_u, {}, 1) = '0'",
            staging_, fmt::join(same_e, " AND "), i + 1);
        values.push_back(fmt::format(
            "CASE WHEN substr(l._pgincr_u, {0}, 1) = '0' THEN l.{1} "
            "WHEN EXISTS (SELECT {2}) THEN (SELECT e.{1} {2} ORDER BY e._pgincr_seq DESC LIMIT 1) "
            "ELSE (SELECT x.{1} FROM ONLY {3} AS x WHERE {4}) END",
            i + 1, c, earlier, shape_.target, fmt::join(same_x, " AND ")));
    }
    auto v = std::vector<std::pair<std::string, std::string>>{
        {"TARGET", shape_.target},
        {"STAGING", staging_},
        {"KEY", fmt::format("{}", fmt::join(key, ", "))},
        {"MATCH", fmt::format("{}", fmt::join(match, " AND "))},
        {"COLUMNS", fmt::format("{}", fmt::join(shape_.columns, ", "))},
        {"VALUES", fmt::format("{}", fmt::join(values, ", "))},
        {"SET", sets.empty() ? std::string("NOTHING")
                             : fmt::format("UPDATE SET {}", fmt::join(sets, ", "))}};
    // newest_wins: a destination row with no value in the column is older than any.
    if (!shape_.newest.empty() && !sets.empty())
        v.back().second +=
            fmt::format(" WHERE d.{0} IS NULL OR EXCLUDED.{0} >= d.{0}", shape_.newest);
    conflicts_ += hold_touched(v);
    std::int64_t upserts = 0;
    if (!shape_.newest.empty())
        upserts = dst_.exec(text::fill("SELECT pg_catalog.count(*) FROM (SELECT DISTINCT ON "
                                       "(%KEY%) _pgincr_op FROM %STAGING% ORDER BY %KEY%, "
                                       "_pgincr_seq DESC) AS l WHERE l._pgincr_op <> 'D'",
                                       v),
                            pg::Expect::value)
                      .integer(0, 0);
    // Upserts first: a row that moved to a new key reads its unchanged values from the
    // old key's row, which the deletes then remove.
    auto upserted = run(text::fill(sql::cdc_upsert, v));
    if (!shape_.newest.empty())
        conflicts_ += upserts - upserted;
    auto deleted = run(text::fill(sql::cdc_delete, v));
    // The next batch streams in without it again.
    dst_.exec(fmt::format("DROP INDEX {}", index));
    return deleted + upserted;
}

std::int64_t TableApply::run(const std::string &sql) {
    if (!busy_.work)
        return dst_.exec(sql).affected_rows();
    return dst_.exec_while(sql, pg::Expect::command, busy_).affected_rows();
}

} // namespace pgincr::cdc
