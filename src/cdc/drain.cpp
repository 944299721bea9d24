#include "cdc/drain.hpp"

#include "util/error.hpp"
#include "util/fault.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <memory>
#include <unordered_map>

namespace pgincr::cdc {

namespace {

// Errors that come from one table's rows or definition in the destination, as opposed
// to the session or the server (connection, shutdown, resources, conflicts).
bool table_specific(const pg::PgError &e) {
    if (e.side() != pg::Side::dest || e.sqlstate().size() != 5)
        return false;
    auto cls = e.sqlstate().substr(0, 2);
    return cls == "22" || cls == "23" || cls == "42" || cls == "44" || cls == "P0" || cls == "27" ||
           cls == "2B";
}

// Runs one apply step, blaming `target` for what only its rows can cause.
template <typename F> auto on_table(const TableApply &a, F &&f) {
    try {
        return f();
    } catch (const pg::PgError &e) {
        if (!table_specific(e))
            throw;
        throw ApplyError(a.shape().target,
                         fmt::format("applying the changes of {}: {}", a.shape().target, e.what()));
    }
}

bool same_shape(const TableShape &a, const TableShape &b) {
    return a.target == b.target && a.columns == b.columns && a.types == b.types && a.key == b.key;
}

} // namespace

DrainResult drain(pg::LogicalStream &stream, pg::Connection &dst, const Resolve &resolve,
                  const SaveProgress &save, const DrainOptions &options) {
    using clock = std::chrono::steady_clock;
    DrainResult local;
    DrainResult &r = options.progress ? *options.progress : local;
    r.applied = stream.received();
    pg::Lsn last_commit = r.applied;
    std::unordered_map<std::uint32_t, std::optional<Route>> routes;
    std::optional<pg::Transaction> tx;
    std::map<std::uint32_t, std::unique_ptr<TableApply>> applies;
    // The one whose COPY may be open: the session takes no other statement until it ends.
    TableApply *copying = nullptr;
    auto copy_to = [&](TableApply *a) {
        if (copying && copying != a)
            on_table(*copying, [&] { copying->end_copy(); });
        copying = a;
    };
    bool in_xact = false;
    pg::Lsn xact_commit; // where the current transaction's commit record starts
    std::int64_t batch_changes = 0, batch_xacts = 0;
    auto batch_started = clock::now();
    auto last_message = clock::now();
    // A keepalive right away: with nothing to send, the server's answer alone tells
    // that `until` was passed, without waiting for a timeout.
    stream.ping();
    auto last_ping = clock::now();

    auto count = [&](const TableApply &a, std::int64_t n) {
        r.changes += n;
        r.changes_by_target[a.shape().target] += n;
        if (a.conflicts() > 0)
            r.conflicts_by_target[a.shape().target] += a.conflicts();
    };
    auto apply_for = [&](std::uint32_t relid) -> TableApply * {
        auto it = routes.find(relid);
        if (it == routes.end())
            throw Error(fmt::format("the replication stream sent a change of relation {} "
                                    "before its Relation message",
                                    relid));
        if (!it->second || xact_commit < it->second->loaded_through)
            return nullptr;
        if (!tx) {
            tx.emplace(dst);
            batch_started = clock::now();
            fault::point("cdc-batch-started");
        }
        auto &a = applies[relid];
        if (!a) {
            copy_to(nullptr);
            a = std::make_unique<TableApply>(dst, it->second->shape);
            a->set_while_busy(
                {[&stream] { stream.while_busy(); }, [&stream] { return stream.ahead_socket(); }});
        }
        copy_to(a.get());
        return a.get();
    };
    // Ends the batch: applies it, saves the position in the same transaction, commits,
    // and only then confirms it to the slot. With no batch, a position that moved (over
    // transactions with nothing to apply) is saved alone before it is confirmed: a saved
    // position behind the slot's means lost changes to the next run (cdc_sync).
    auto commit_batch = [&](const char *committed = "cdc-after-commit") {
        if (tx) {
            copy_to(nullptr);
            for (auto &[_, a] : applies)
                count(*a, on_table(*a, [&] { return a->finish(); }));
            applies.clear();
            save(dst, last_commit);
            tx->commit();
            tx.reset();
            ++r.batches;
            fault::point(committed); // committed, not yet confirmed to the slot
        } else if (last_commit > r.applied) {
            pg::Transaction alone(dst);
            save(dst, last_commit);
            alone.commit();
            fault::point(committed);
        }
        if (last_commit > r.applied) {
            stream.confirm(last_commit);
            r.applied = last_commit;
        }
        r.transactions += batch_xacts;
        batch_xacts = batch_changes = 0;
    };

    auto following = [&] { return options.follow_until && clock::now() < *options.follow_until; };
    auto last_advance = clock::now();

    for (;;) {
        if (!in_xact &&
            ((last_commit >= options.until && !following()) || (options.stop && options.stop()))) {
            commit_batch();
            return r;
        }
        auto data = stream.next(std::chrono::milliseconds(100));
        if (!data) {
            if (!in_xact) {
                if (stream.server_end() >= options.until && following()) {
                    auto now = clock::now();
                    if (tx && now - last_message >= std::chrono::milliseconds(100))
                        commit_batch();
                    // Caught up and following: ask about once a second how far the
                    // server has read, and let the slot release what it has decoded.
                    if (now - last_ping >= std::chrono::seconds(1)) {
                        stream.ping();
                        last_ping = now;
                    }
                    if (!tx && stream.server_end() > r.applied &&
                        now - last_advance >= std::chrono::seconds(10)) {
                        pg::Transaction idle(dst);
                        save(dst, stream.server_end());
                        idle.commit();
                        stream.confirm(stream.server_end());
                        r.applied = last_commit = stream.server_end();
                        last_advance = now;
                    }
                    if (now - stream.last_heard() > options.give_up)
                        throw Error(fmt::format(
                            "the replication stream sent nothing for {} s, "
                            "not even an answer to a keepalive",
                            std::chrono::duration_cast<std::chrono::seconds>(options.give_up)
                                .count()));
                    continue;
                }
                if (stream.server_end() >= options.until) {
                    // The server has sent everything before `until` (a keepalive comes
                    // after the data it follows): apply what came and stop.
                    commit_batch();
                    // Everything before the server's end was sent, and none of it
                    // committed a change of these tables after r.applied. Confirmed that
                    // far, not only to `until`: a quiet source then finds the slot at its
                    // WAL end on the next run, which needs no stream at all.
                    auto end = std::max(options.until, stream.server_end());
                    if (r.applied < end) {
                        pg::Transaction idle(dst);
                        save(dst, end);
                        idle.commit();
                        stream.confirm(end);
                        r.applied = end;
                    }
                    return r;
                }
                auto now = clock::now();
                // Nothing arriving for a while: apply what came, and ask how far the
                // server has read.
                if (tx && now - last_message >= std::chrono::milliseconds(100))
                    commit_batch();
                if (now - last_message >= std::chrono::milliseconds(20) &&
                    now - last_ping >= std::chrono::milliseconds(20)) {
                    stream.ping();
                    last_ping = now;
                }
            }
            if (clock::now() - last_message > options.give_up)
                throw Error(fmt::format(
                    "the replication stream sent nothing for {} s while "
                    "{} was not reached",
                    std::chrono::duration_cast<std::chrono::seconds>(options.give_up).count(),
                    options.until.str()));
            continue;
        }
        last_message = clock::now();
        auto m = decode(data->bytes);
        if (auto *b = std::get_if<Begin>(&m)) {
            in_xact = true;
            xact_commit = pg::Lsn{b->final_lsn};
            if (xact_commit.value >= r.applied.value + options.confirm_ahead) {
                // Nothing is pending before this transaction's commit record, so the
                // position may move there now, with the batch so far (a crash replays
                // the transaction: its commit is not before the position). PostgreSQL
                // moves the slot's restart_lsn only to a running-transactions record
                // decoded while none is waiting for a confirmation; confirming here, far
                // past the last one, lets the record after this transaction become the
                // next restart point, instead of the next run decoding it all again.
                last_commit = xact_commit;
                commit_batch("cdc-ahead-committed");
            }
        } else if (auto *c = std::get_if<Commit>(&m)) {
            in_xact = false;
            last_commit = pg::Lsn{c->end_lsn};
            ++batch_xacts;
            if (batch_changes >= options.batch_changes ||
                (tx && clock::now() - batch_started >= options.batch_time) ||
                (batch_changes >= options.batch_when_idle && !stream.waiting()))
                commit_batch();
        } else if (auto *rel = std::get_if<Relation>(&m)) {
            auto route = resolve(*rel);
            auto it = applies.find(rel->id);
            if (it != applies.end() && (!route || !same_shape(route->shape, it->second->shape()))) {
                // The table changed in the middle of a batch: what was staged under the
                // old columns is applied first, in the same transaction, in order.
                copy_to(nullptr);
                count(*it->second, on_table(*it->second, [&] { return it->second->finish(); }));
                applies.erase(it);
            }
            routes[rel->id] = std::move(route);
        } else if (auto *i = std::get_if<Insert>(&m)) {
            if (auto *a = apply_for(i->relation)) {
                on_table(*a, [&] { a->add(*i); });
                ++batch_changes;
            }
        } else if (auto *u = std::get_if<Update>(&m)) {
            if (auto *a = apply_for(u->relation)) {
                on_table(*a, [&] { a->add(*u); });
                ++batch_changes;
            }
        } else if (auto *d = std::get_if<Delete>(&m)) {
            if (auto *a = apply_for(d->relation)) {
                on_table(*a, [&] { a->add(*d); });
                ++batch_changes;
            }
        } else if (auto *t = std::get_if<Truncate>(&m)) {
            for (auto relid : t->relations)
                if (auto *a = apply_for(relid))
                    on_table(*a, [&] { a->truncate(); });
        }
    }
}

} // namespace pgincr::cdc
