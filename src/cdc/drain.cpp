#include "cdc/drain.hpp"

#include "util/error.hpp"

#include <fmt/format.h>
#include <map>
#include <memory>
#include <unordered_map>

namespace pgincr::cdc {

namespace {

bool same_shape(const TableShape &a, const TableShape &b) {
    return a.target == b.target && a.columns == b.columns && a.types == b.types && a.key == b.key;
}

} // namespace

DrainResult drain(pg::LogicalStream &stream, pg::Connection &dst, const Resolve &resolve,
                  const SaveProgress &save, const DrainOptions &options) {
    using clock = std::chrono::steady_clock;
    DrainResult r;
    r.applied = stream.received();
    pg::Lsn last_commit = r.applied;
    std::unordered_map<std::uint32_t, std::optional<TableShape>> shapes;
    std::optional<pg::Transaction> tx;
    std::map<std::uint32_t, std::unique_ptr<TableApply>> applies;
    bool in_xact = false;
    std::int64_t batch_changes = 0, batch_xacts = 0;
    auto batch_started = clock::now();
    auto last_message = clock::now();

    auto apply_for = [&](std::uint32_t relid) -> TableApply * {
        auto it = shapes.find(relid);
        if (it == shapes.end())
            throw Error(fmt::format("the replication stream sent a change of relation {} "
                                    "before its Relation message",
                                    relid));
        if (!it->second)
            return nullptr;
        if (!tx) {
            tx.emplace(dst);
            batch_started = clock::now();
        }
        auto &a = applies[relid];
        if (!a)
            a = std::make_unique<TableApply>(dst, *it->second);
        return a.get();
    };
    // Ends the batch: applies it, saves the position in the same transaction, commits,
    // and only then confirms it to the slot.
    auto commit_batch = [&] {
        if (tx) {
            for (auto &[_, a] : applies)
                r.changes += a->finish();
            applies.clear();
            save(dst, last_commit);
            tx->commit();
            tx.reset();
            ++r.batches;
        }
        if (last_commit > r.applied) {
            stream.confirm(last_commit);
            r.applied = last_commit;
        }
        r.transactions += batch_xacts;
        batch_xacts = batch_changes = 0;
    };

    for (;;) {
        if (!in_xact && last_commit >= options.until) {
            commit_batch();
            return r;
        }
        auto data = stream.next(std::chrono::milliseconds(100));
        if (!data) {
            if (!in_xact) {
                // Nothing more is arriving now: apply what came, and ask the server how
                // far it has read; past `until` with nothing sent means nothing is left.
                commit_batch();
                if (stream.server_end() >= options.until)
                    return r;
                stream.ping();
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
        if (std::holds_alternative<Begin>(m)) {
            in_xact = true;
        } else if (auto *c = std::get_if<Commit>(&m)) {
            in_xact = false;
            last_commit = pg::Lsn{c->end_lsn};
            ++batch_xacts;
            if (batch_changes >= options.batch_changes ||
                (tx && clock::now() - batch_started >= options.batch_time))
                commit_batch();
        } else if (auto *rel = std::get_if<Relation>(&m)) {
            auto shape = resolve(*rel);
            auto it = applies.find(rel->id);
            if (it != applies.end() && (!shape || !same_shape(*shape, it->second->shape()))) {
                // The table changed in the middle of a batch: what was staged under the
                // old columns is applied first, in the same transaction, in order.
                r.changes += it->second->finish();
                applies.erase(it);
            }
            shapes[rel->id] = std::move(shape);
        } else if (auto *i = std::get_if<Insert>(&m)) {
            if (auto *a = apply_for(i->relation)) {
                a->add(*i);
                ++batch_changes;
            }
        } else if (auto *u = std::get_if<Update>(&m)) {
            if (auto *a = apply_for(u->relation)) {
                a->add(*u);
                ++batch_changes;
            }
        } else if (auto *d = std::get_if<Delete>(&m)) {
            if (auto *a = apply_for(d->relation)) {
                a->add(*d);
                ++batch_changes;
            }
        } else if (auto *t = std::get_if<Truncate>(&m)) {
            for (auto relid : t->relations)
                if (auto *a = apply_for(relid))
                    a->truncate();
        }
    }
}

} // namespace pgincr::cdc
