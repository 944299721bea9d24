#pragma once
// A source snapshot as an object (after pgcopydb's snapshot.c): one REPEATABLE READ
// READ ONLY transaction whose table locks are taken before the first statement that
// fixes the snapshot, and which ends as soon as the rows and the mark are read, so
// that the source is not held (vacuum horizon, a queued ALTER TABLE) through the
// destination's merge, index build, swap or ANALYZE.
//
// Why the lock comes first: TRUNCATE is not MVCC-safe. A snapshot taken before a
// TRUNCATE-and-reload commits sees the new, already committed file as empty. LOCK
// TABLE waits for the TRUNCATE to commit, and only the statement after it takes the
// snapshot, which then sees the reloaded rows.
#include "pg/connection.hpp"

#include <optional>
#include <string>

namespace pgincr::pg {

class Snapshot {
  public:
    explicit Snapshot(Connection &src);
    // A snapshot exported elsewhere (a replication slot's, for the cdc mode), imported
    // with SET TRANSACTION SNAPSHOT; exported() then gives that same id.
    Snapshot(Connection &src, const std::string &import_id);
    ~Snapshot() = default; // the transaction rolls back if still open
    Snapshot(const Snapshot &) = delete;
    Snapshot &operator=(const Snapshot &) = delete;

    // LOCK TABLE ONLY ... IN ACCESS SHARE MODE: only before the first query of the
    // snapshot; conflicts with nothing but ACCESS EXCLUSIVE (TRUNCATE, DROP, ALTER).
    void lock(const std::string &qualified_table);
    // pg_export_snapshot(), once, for readers in other sessions (pg_dump --snapshot,
    // SnapshotReader). Valid while this object is open.
    const std::string &exported();
    // COMMIT: releases the snapshot and the locks. Idempotent.
    void close();
    bool open() const { return tx_.has_value(); }
    Connection &conn() { return conn_; }

  private:
    Connection &conn_;
    std::optional<Transaction> tx_;
    std::string exported_;
};

// Another session reading in a Snapshot's exported snapshot, so that several readers
// see exactly one consistent copy.
class SnapshotReader {
  public:
    SnapshotReader(Connection &conn, const std::string &snapshot_id);
    SnapshotReader(const SnapshotReader &) = delete;
    SnapshotReader &operator=(const SnapshotReader &) = delete;
    void close();
    Connection &conn() { return conn_; }

  private:
    Connection &conn_;
    std::optional<Transaction> tx_;
};

} // namespace pgincr::pg
