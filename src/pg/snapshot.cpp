#include "pg/snapshot.hpp"

#include <fmt/format.h>

namespace pgincr::pg {

namespace {
constexpr const char *begin_repeatable_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

// Commits and forgets the transaction; forgotten even when COMMIT fails, since the
// snapshot is gone with the transaction either way. Idempotent.
void commit_once(std::optional<Transaction> &tx) {
    if (!tx)
        return;
    try {
        tx->commit();
    } catch (...) {
        tx.reset();
        throw;
    }
    tx.reset();
}

} // namespace

Snapshot::Snapshot(Connection &src) : conn_(src) {
    tx_.emplace(conn_, begin_repeatable_read);
}

Snapshot::Snapshot(Connection &src, const std::string &import_id)
    : conn_(src), exported_(import_id) {
    tx_.emplace(conn_, begin_repeatable_read);
    conn_.exec(fmt::format("SET TRANSACTION SNAPSHOT {}", conn_.quote_literal(import_id)));
}

void Snapshot::lock(const std::string &qualified_table) {
    conn_.exec(fmt::format("LOCK TABLE ONLY {} IN ACCESS SHARE MODE", qualified_table));
}

const std::string &Snapshot::exported() {
    if (exported_.empty())
        exported_ = std::string(
            conn_.exec("SELECT pg_catalog.pg_export_snapshot()", Expect::value).text(0, 0));
    return exported_;
}

void Snapshot::close() {
    commit_once(tx_);
}

SnapshotReader::SnapshotReader(Connection &conn, const std::string &snapshot_id) : conn_(conn) {
    tx_.emplace(conn_, begin_repeatable_read);
    conn_.exec(fmt::format("SET TRANSACTION SNAPSHOT {}", conn_.quote_literal(snapshot_id)));
}

void SnapshotReader::close() {
    commit_once(tx_);
}

} // namespace pgincr::pg
