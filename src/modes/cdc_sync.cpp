#include "modes/cdc_sync.hpp"

#include "apply/conflicts.hpp"
#include "cdc/drain.hpp"
#include "cdc/publication.hpp"
#include "cdc/source_setup.hpp"
#include "dest/ownership.hpp"
#include "dest/progress.hpp"
#include "modes/full_load.hpp"
#include "pg/replication.hpp"
#include "pg/snapshot.hpp"
#include "source/catalog.hpp"
#include "util/error.hpp"
#include "util/fault.hpp"
#include "util/log.hpp"
#include "util/signals.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <thread>
#include <unistd.h>

namespace pgincr::cdc_sync {

namespace {

// A source column as pgoutput's Relation message describes it.
struct PublishedColumn {
    std::string name;
    std::uint32_t type = 0;
    std::int32_t typmod = -1;
};

struct Entry {
    const config::Table *cfg = nullptr;
    TableResult r;
    catalog::SourceTable table;
    std::optional<state::TableState> saved; // after a load: the loaded state
    std::optional<std::string> load_reason; // set: loaded before streaming
    SyncMode load_mode = SyncMode::initial;
    std::optional<pg::Lsn> lsn;           // what the destination's rows reflect
    std::vector<PublishedColumn> columns; // as the loaded rows have them
    bool stale = false;                   // its columns changed in the stream
    bool slot_failure = false;            // failed because the slot is gone
    bool failed() const { return !r.error.empty(); }
    void fail(std::string why) {
        r.ok = false;
        r.error = std::move(why);
    }
};

// The columns pgoutput sends (it leaves out generated ones), in the order it sends them.
std::vector<PublishedColumn> published_columns(pg::Connection &src, std::int64_t oid) {
    auto res = src.exec("SELECT a.attname, a.atttypid::pg_catalog.int8, a.atttypmod FROM "
                        "pg_catalog.pg_attribute a WHERE a.attrelid = $1::pg_catalog.oid AND "
                        "a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY "
                        "a.attnum",
                        {std::to_string(oid)}, pg::Expect::rows);
    std::vector<PublishedColumn> out;
    for (int i = 0; i < res.rows(); ++i)
        out.push_back({std::string(res.text(i, 0)), static_cast<std::uint32_t>(res.integer(i, 1)),
                       static_cast<std::int32_t>(res.integer(i, 2))});
    return out;
}

// "" when the Relation message has the columns the destination was loaded with.
std::string column_change(const std::vector<PublishedColumn> &loaded, const cdc::Relation &rel) {
    std::vector<std::string> was, now;
    for (const auto &c : loaded)
        was.push_back(c.name);
    for (const auto &c : rel.columns)
        now.push_back(c.name);
    if (was != now)
        return fmt::format("columns ({}) are now ({})", fmt::join(was, ", "), fmt::join(now, ", "));
    for (std::size_t i = 0; i < loaded.size(); ++i)
        if (loaded[i].type != rel.columns[i].type || loaded[i].typmod != rel.columns[i].typmod)
            return fmt::format("the type of column \"{}\" changed", loaded[i].name);
    return "";
}

cdc::TableShape shape_of(const pg::Connection &dst, const config::Settings &settings,
                         const Entry &e, const cdc::Relation &rel) {
    cdc::TableShape shape;
    shape.target = dst.qualified(settings.dest_schema, e.cfg->destination);
    for (std::size_t i = 0; i < rel.columns.size(); ++i) {
        const auto &name = rel.columns[i].name;
        shape.columns.push_back(dst.quote_ident(name));
        const auto *col = e.table.column(name);
        shape.types.push_back(col ? col->dest_type : "text");
        if (std::find(e.table.unique_cols.begin(), e.table.unique_cols.end(), name) !=
            e.table.unique_cols.end())
            shape.key.push_back(i);
    }
    if (e.cfg->conflict == config::Conflict::newest_wins)
        shape.newest = dst.quote_ident(e.cfg->conflict_column);
    if (conflicts::keeps_destination_changes(*e.cfg))
        shape.touched =
            dst.qualified(settings.dest_schema, conflicts::touched_name(e.cfg->destination));
    if (e.cfg->conflict == config::Conflict::manual)
        shape.conflicts_table =
            dst.qualified(settings.dest_schema, conflicts::conflicts_name(e.cfg->destination));
    return shape;
}

pg::ConnInfo replication_info(const config::Settings &settings) {
    auto info = settings.source;
    info.replication = true;
    return info;
}

state::TableState base_state(const Entry &e) {
    state::TableState s;
    s.source_table = e.cfg->name;
    s.destination = e.cfg->destination;
    s.fingerprint = e.table.fingerprint;
    s.options = config::options_signature(*e.cfg);
    return s;
}

// Why `e` must be loaded before it streams; nullopt when it goes on from its position.
std::optional<std::pair<SyncMode, std::string>>
load_needed(pg::Connection &dst, const config::Settings &settings, const Entry &e) {
    if (!e.saved)
        return std::pair{SyncMode::initial, std::string("no saved state")};
    auto reset = [](std::string why) { return std::pair{SyncMode::reset, std::move(why)}; };
    if (e.saved->reset_requested)
        return reset("reset requested with `pgincr reset`");
    if (e.saved->fingerprint != e.table.fingerprint)
        return reset("the source table's definition changed");
    if (e.saved->options != config::options_signature(*e.cfg))
        return reset("the entry's mode changed");
    auto sig = catalog::dest_signature(dst, settings.dest_schema, e.cfg->destination);
    if (!sig)
        return reset("the destination table is missing");
    if (*sig != e.saved->dest_signature)
        return reset("the destination table's columns changed");
    if (!e.saved->lsn)
        return reset("the table has no stream position (a new cdc entry, or after `pgincr "
                     "teardown`)");
    return std::nullopt;
}

class Run {
  public:
    Run(table_sync::Sessions &sessions, const config::Settings &settings, const state::Store &store,
        const Request &request)
        : s_(sessions), settings_(settings), store_(store), request_(request) {
        heartbeat_ = [this] {
            signals::throw_if_interrupted();
            if (s_.lock)
                s_.lock->ensure_held();
        };
        entries_.reserve(request.tables.size());
        for (const auto &cfg : request.tables) {
            Entry e;
            e.cfg = &cfg;
            e.r.name = cfg.name;
            e.r.destination = cfg.destination;
            e.r.config_mode = config::mode_name(cfg.mode);
            entries_.push_back(std::move(e));
        }
    }

    Outcome run() {
        auto started = std::chrono::steady_clock::now();
        try {
            if (prepare()) {
                plan();
                load(pending(), false);
                drain();
                reload_stale();
            }
        } catch (const lock::LockLostError &e) {
            lock_lost_ = true;
            for (auto &x : entries_)
                if (!x.failed())
                    x.fail(e.what());
        } catch (const std::exception &e) {
            for (auto &x : entries_)
                if (!x.failed())
                    x.fail(e.what());
        }
        Outcome out;
        try {
            out.slot = slot_report(s_.src, settings_.slot);
            if (out.slot->behind_bytes && drained_at_)
                out.slot->behind_seconds =
                    *out.slot->behind_bytes > 0
                        ? std::chrono::duration<double>(std::chrono::system_clock::now() -
                                                        *drained_at_)
                              .count()
                        : 0.0;
        } catch (const std::exception &e) {
            log::warn("", "cannot read replication slot {} ({})", settings_.slot, e.what());
        }
        auto ms = timeutil::ms_between(started, std::chrono::steady_clock::now());
        for (auto &e : entries_) {
            e.r.duration_ms = ms;
            if (!e.failed()) {
                e.r.ok = true;
                e.r.watermark = e.lsn ? std::optional(e.lsn->str()) : std::nullopt;
                if (out.slot)
                    e.r.lag_seconds = out.slot->behind_seconds;
            }
            record(e);
            out.tables.push_back(e.r);
        }
        return out;
    }

  private:
    std::vector<Entry *> pending() {
        std::vector<Entry *> out;
        for (auto &e : entries_)
            if (!e.failed() && e.load_reason)
                out.push_back(&e);
        return out;
    }

    // The source, each table and the publication; false when nothing can go on.
    bool prepare() {
        auto problems = cdc::source_problems(s_.src, settings_.source.user);
        if (!problems.empty()) {
            std::string why =
                fmt::format("the source cannot stream changes: {}", fmt::join(problems, "; "));
            for (auto &e : entries_)
                e.fail(why);
            return false;
        }
        for (auto &e : entries_) {
            try {
                describe(e);
                std::string disagreement;
                e.saved = table_sync::load_saved(s_.dst, settings_, *e.cfg, store_, &disagreement);
                if (!disagreement.empty())
                    log::warn(e.cfg->destination, "{}", disagreement);
            } catch (const std::exception &ex) {
                e.fail(ex.what());
            }
        }
        // The publication carries every cdc entry of the config, not only this run's.
        std::vector<cdc::SourceName> wanted;
        for (const auto &cfg : request_.configured)
            if (catalog::relation_exists(s_.src, settings_.source_schema, cfg.name))
                wanted.emplace_back(settings_.source_schema, cfg.name);
        std::sort(wanted.begin(), wanted.end());
        wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
        auto writable = settings_.source;
        writable.read_only = false;
        auto lacking = cdc::ensure_publication(s_.src, writable, settings_.publication,
                                               settings_.pipeline_name, wanted);
        for (auto &e : entries_)
            if (auto it = lacking.find({settings_.source_schema, e.cfg->name});
                !e.failed() && it != lacking.end())
                e.fail(it->second);
        return true;
    }

    void describe(Entry &e) {
        e.table = catalog::describe_source(s_.src, settings_.source_schema, *e.cfg);
        catalog::require_syncable(e.table);
        auto why = cdc::replica_identity_problem(s_.src, settings_.source_schema, e.cfg->name,
                                                 e.table.unique_cols);
        if (!why.empty())
            throw catalog::TableError(why);
        e.columns = published_columns(s_.src, e.table.oid);
    }

    void plan() {
        slot_ = cdc::slot_status(s_.src, settings_.slot);
        std::optional<pg::Lsn> confirmed;
        if (slot_.confirmed_flush)
            confirmed = pg::Lsn::parse(*slot_.confirmed_flush);
        bool usable = slot_.exists && !slot_.lost();
        for (auto &e : entries_) {
            if (e.failed())
                continue;
            try {
                if (auto need = load_needed(s_.dst, settings_, e)) {
                    e.load_mode = need->first;
                    e.load_reason = need->second;
                } else if (!usable) {
                    e.slot_failure = true;
                    e.fail(slot_.exists
                               ? fmt::format(
                                     "replication slot \"{}\" was invalidated (wal_status lost: it "
                                     "fell behind by more than max_slot_wal_keep_size), so the "
                                     "changes since position {} are gone; run `pgincr reset` for "
                                     "the cdc tables and sync again: they are reloaded under a new "
                                     "slot (README, \"When the slot is lost\")",
                                     settings_.slot, *e.saved->lsn)
                               : fmt::format("replication slot \"{}\" no longer exists on the "
                                             "source, so the changes since position {} cannot be "
                                             "read; run `pgincr reset {}` and sync again: the "
                                             "table is reloaded under a new slot",
                                             settings_.slot, *e.saved->lsn, e.cfg->destination));
                } else if (auto at = pg::Lsn::parse(*e.saved->lsn); confirmed && at < *confirmed) {
                    // The stream went on without this table (its columns changed, or the
                    // destination refused its changes): its rows lack changes the slot no
                    // longer has.
                    e.load_mode = SyncMode::reset;
                    e.load_reason = fmt::format("its position {} is behind the slot's ({}): "
                                                "the stream went on without it after an "
                                                "earlier failure",
                                                at.str(), confirmed->str());
                } else {
                    e.lsn = at;
                }
                if (e.load_reason) {
                    ownership::Claim claim{e.saved.has_value(), false,
                                           std::find(request_.replace.begin(),
                                                     request_.replace.end(),
                                                     e.cfg->destination) != request_.replace.end()};
                    if (auto why =
                            ownership::conflict(s_.dst, settings_.dest_schema, *e.cfg, claim))
                        e.fail(*why);
                }
            } catch (const std::exception &ex) {
                e.fail(ex.what());
            }
        }
        if (usable)
            return;
        // A slot is replaced only when no table still needs the old one's changes.
        bool waiting = std::any_of(entries_.begin(), entries_.end(),
                                   [](const Entry &e) { return e.slot_failure; });
        for (auto *e : pending())
            if (waiting)
                e->fail(fmt::format("not loaded: replication slot \"{}\" is replaced only once "
                                    "every cdc table that streamed from it is reset with "
                                    "`pgincr reset`",
                                    settings_.slot));
    }

    // Loads `todo` under one slot's exported snapshot: the pipeline's slot, created here
    // (and replacing a lost one) when it does not stand, else a temporary one.
    void load(const std::vector<Entry *> &todo, bool after_stream) {
        if (todo.empty())
            return;
        bool create = !after_stream && !(slot_.exists && !slot_.lost());
        pg::Connection repl(replication_info(settings_));
        if (create && slot_.exists) {
            wait_until_free();
            log::warn("", "dropping invalidated replication slot \"{}\" to replace it",
                      settings_.slot);
            pg::drop_slot(repl, settings_.slot);
        }
        std::string name =
            create ? settings_.slot
                   : fmt::format("{}_load_{}", settings_.slot.substr(0, 40), ::getpid());
        auto slot = pg::create_logical_slot(repl, name, !create);
        if (create) {
            log::info("", "created replication slot \"{}\" at {}", settings_.slot,
                      slot.consistent_point.str());
            slot_.exists = true;
            slot_.wal_status.reset();
        }
        fault::point("cdc-slot-created");
        for (auto *e : todo) {
            if (signals::interrupted()) {
                e->fail("not started: the run was interrupted");
                continue;
            }
            try {
                heartbeat_();
                log::info(e->cfg->destination, "{} load: {}", sync_mode_name(e->load_mode),
                          *e->load_reason);
                pg::Snapshot snapshot(s_.src, slot.snapshot);
                snapshot.lock(s_.src.qualified(settings_.source_schema, e->cfg->name));
                auto next = base_state(*e);
                next.lsn = slot.consistent_point.str();
                auto res = full_load::run(snapshot, s_.dst, settings_, *e->cfg, e->table,
                                          watermark::Horizon{}, heartbeat_, next);
                e->r.mode = e->load_mode;
                e->r.rows_copied += res.rows;
                e->r.rows_merged += res.rows;
                e->saved = next;
                e->lsn = slot.consistent_point;
                e->load_reason.reset();
            } catch (const lock::LockLostError &) {
                throw;
            } catch (const std::exception &ex) {
                e->fail(ex.what());
            }
        }
        // Closing the session releases the snapshot (and drops a temporary slot).
    }

    void drain() {
        std::vector<Entry *> streaming;
        for (auto &e : entries_) {
            if (e.failed() || !e.lsn)
                continue;
            // The policy may have changed since the load: its side tables and trigger
            // follow it before any change is applied.
            try {
                pg::Transaction tx(s_.dst);
                conflicts::prepare(s_.dst, settings_.dest_schema, *e.cfg, e.table, false);
                tx.commit();
                streaming.push_back(&e);
            } catch (const std::exception &ex) {
                e.fail(ex.what());
            }
        }
        if (streaming.empty() || signals::interrupted())
            return;
        for (auto *e : streaming)
            if (e->r.mode == SyncMode::skipped)
                e->r.mode = SyncMode::cdc;
        fault::point("cdc-before-drain");
        pg::Lsn start = *streaming.front()->lsn;
        for (auto *e : streaming)
            start = std::min(start, *e->lsn);
        auto until = pg::Lsn::parse(
            s_.src.exec("SELECT pg_catalog.pg_current_wal_lsn()::text", pg::Expect::value)
                .text(0, 0));
        auto read_at = std::chrono::system_clock::now();
        if (!request_.follow_until && nothing_pending(until)) {
            // Every table's position is at or past the slot's (plan() reloads those
            // behind it), so none of them has anything to save either.
            drained_at_ = read_at;
            log::info("", "slot \"{}\": nothing to apply, confirmed up to the source's WAL end {}",
                      settings_.slot, until.str());
            return;
        }

        auto find = [&](const cdc::Relation &rel) -> Entry * {
            if (rel.schema != settings_.source_schema)
                return nullptr;
            for (auto *e : streaming)
                if (e->cfg->name == rel.name)
                    return e;
            return nullptr;
        };
        cdc::Resolve resolve = [&](const cdc::Relation &rel) -> std::optional<cdc::Route> {
            Entry *e = find(rel);
            if (!e || e->stale || e->failed())
                return std::nullopt;
            if (auto why = column_change(e->columns, rel); !why.empty()) {
                e->stale = true;
                log::info(e->cfg->destination,
                          "the source table changed while streaming ({}): its later changes "
                          "are not applied, and it is reloaded after the stream",
                          why);
                return std::nullopt;
            }
            return cdc::Route{shape_of(s_.dst, settings_, *e, rel), *e->lsn};
        };
        std::string progress_table = s_.dst.qualified(settings_.dest_schema, progress::table_name);
        cdc::SaveProgress save = [&](pg::Connection &dst, pg::Lsn applied) {
            std::vector<std::optional<std::string>> live;
            for (auto *e : streaming)
                if (!e->stale && !e->failed())
                    live.push_back(e->cfg->destination);
            dst.exec(fmt::format("UPDATE {} SET lsn = $1::pg_catalog.pg_lsn, updated_at = "
                                 "pg_catalog.now() WHERE destination = ANY ($2::text[]) AND "
                                 "(lsn IS NULL OR lsn < $1::pg_catalog.pg_lsn)",
                                 progress_table),
                     {applied.str(), text::array_literal(live)}, pg::Expect::command);
            // Only the lock: a signal ends the drain between source transactions, with
            // this batch committed, rather than here.
            if (s_.lock)
                s_.lock->ensure_held();
            fault::point("cdc-before-commit");
        };
        cdc::DrainOptions options;
        options.until = until;
        options.follow_until = request_.follow_until;
        options.stop = [] { return signals::interrupted(); };
        cdc::DrainResult res;
        options.progress = &res;
        // A table whose changes the destination refuses drops out, and the stream goes
        // on without it from what committed: the other tables are not held back.
        for (;;) {
            try {
                wait_until_free();
                pg::Connection repl(replication_info(settings_));
                pg::LogicalStream stream(repl, settings_.slot, start, {settings_.publication});
                cdc::drain(stream, s_.dst, resolve, save, options);
                stream.finish();
                break;
            } catch (const lock::LockLostError &) {
                throw;
            } catch (const cdc::ApplyError &ex) {
                auto it = std::find_if(streaming.begin(), streaming.end(), [&](Entry *e) {
                    return !e->failed() && s_.dst.qualified(settings_.dest_schema,
                                                            e->cfg->destination) == ex.target();
                });
                if (it == streaming.end()) {
                    fail_streaming(streaming, ex.what());
                    return;
                }
                (*it)->fail(fmt::format("{}; the other cdc tables go on, and the next sync "
                                        "reloads this one",
                                        ex.what()));
                log::error((*it)->cfg->destination, "{}", (*it)->r.error);
                if (std::none_of(streaming.begin(), streaming.end(),
                                 [](Entry *e) { return !e->failed(); }))
                    return;
            } catch (const std::exception &ex) {
                fail_streaming(streaming, ex.what());
                return;
            }
        }
        // Following, the stream was read up to its end until a moment ago.
        drained_at_ = request_.follow_until ? std::chrono::system_clock::now() : read_at;
        for (auto *e : streaming) {
            if (e->stale || e->failed())
                continue;
            auto target = s_.dst.qualified(settings_.dest_schema, e->cfg->destination);
            e->r.rows_merged += res.changes_by_target[target];
            e->r.conflicts += res.conflicts_by_target[target];
            e->lsn = std::max(*e->lsn, res.applied);
        }
        log::info("",
                  "slot \"{}\": {} transaction(s), {} change(s) applied in {} batch(es), up "
                  "to {}",
                  settings_.slot, res.transactions, res.changes, res.batches, res.applied.str());
    }

    // Whether the slot is confirmed up to `until` already: no transaction can have
    // committed after its position, so a stream would only make the walsender decode
    // the WAL since its restart point (the cost of a sync with nothing to apply) to
    // send nothing.
    bool nothing_pending(pg::Lsn until) {
        auto st = cdc::slot_status(s_.src, settings_.slot);
        return st.exists && !st.lost() && st.confirmed_flush &&
               pg::Lsn::parse(*st.confirmed_flush) >= until;
    }

    void fail_streaming(const std::vector<Entry *> &streaming, const std::string &why) {
        for (auto *e : streaming)
            if (!e->failed())
                e->fail(fmt::format("streaming from slot \"{}\": {}", settings_.slot, why));
    }

    // A run killed a moment ago leaves its walsender holding the slot until the server
    // notices the closed socket: wait for that briefly rather than fail.
    void wait_until_free() {
        for (int i = 0; i < 150; ++i) {
            if (!cdc::slot_status(s_.src, settings_.slot).active)
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        throw Error(fmt::format("replication slot \"{}\" is in use by another session; is "
                                "another pgincr streaming with the same PGINCR_SLOT?",
                                settings_.slot));
    }

    // Tables whose columns changed in the stream: loaded again now, under a new
    // snapshot, so that the run ends with every table current.
    void reload_stale() {
        std::vector<Entry *> todo;
        for (auto &e : entries_) {
            if (!e.stale || e.failed())
                continue;
            try {
                describe(e);
                e.load_mode = SyncMode::reset;
                e.load_reason = "the source table's columns changed while streaming";
                e.stale = false;
                todo.push_back(&e);
            } catch (const std::exception &ex) {
                e.fail(ex.what());
            }
        }
        load(todo, true);
    }

    void record(const Entry &e) {
        if (lock_lost_)
            return; // another run may own sync-state/ now
        try {
            auto now = timeutil::iso_utc(std::chrono::system_clock::now());
            if (!e.failed() && e.saved) {
                auto next = *e.saved;
                next.lsn = e.lsn ? std::optional(e.lsn->str()) : next.lsn;
                next.reset_requested = false;
                next.last_sync = state::LastSync{now,
                                                 sync_mode_name(e.r.mode),
                                                 "ok",
                                                 e.r.rows_copied,
                                                 e.r.rows_merged,
                                                 e.r.duration_ms,
                                                 "",
                                                 e.r.lag_seconds,
                                                 0,
                                                 e.r.conflicts};
                fault::point("before-state-save");
                store_.save(next);
            } else if (e.failed() && e.saved) {
                auto keep = *e.saved;
                keep.last_sync =
                    state::LastSync{now, sync_mode_name(e.r.mode), "failed",  0,
                                    0,   e.r.duration_ms,          e.r.error, std::nullopt};
                store_.save(keep);
            }
        } catch (const std::exception &ex) {
            log::warn(e.cfg->destination, "cannot write sync-state/ ({})", ex.what());
        }
    }

    table_sync::Sessions &s_;
    const config::Settings &settings_;
    const state::Store &store_;
    const Request &request_;
    apply::Heartbeat heartbeat_;
    std::vector<Entry> entries_;
    cdc::SlotStatus slot_;
    std::optional<std::chrono::system_clock::time_point> drained_at_;
    bool lock_lost_ = false;
};

} // namespace

Outcome run(table_sync::Sessions &sessions, const config::Settings &settings,
            const state::Store &store, const Request &request) {
    return Run(sessions, settings, store, request).run();
}

SlotReport slot_report(pg::Connection &src, const std::string &slot) {
    auto st = cdc::slot_status(src, slot);
    SlotReport r;
    r.name = slot;
    r.exists = st.exists;
    r.wal_status = st.wal_status;
    r.retained_bytes = st.retained_bytes;
    r.behind_bytes = st.behind_bytes;
    r.confirmed_lsn = st.confirmed_flush;
    return r;
}

} // namespace pgincr::cdc_sync
