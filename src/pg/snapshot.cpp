#include "pg/snapshot.hpp"

#include <fmt/format.h>

namespace pgincr::pg {

namespace {
constexpr const char *begin_repeatable_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
}

Snapshot::Snapshot(Connection &src) : conn_(src) {
    tx_.emplace(conn_, begin_repeatable_read);
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
    if (!tx_)
        return;
    // Closed even when COMMIT fails: the snapshot is gone with the transaction.
    try {
        tx_->commit();
    } catch (...) {
        tx_.reset();
        throw;
    }
    tx_.reset();
}

SnapshotReader::SnapshotReader(Connection &conn, const std::string &snapshot_id) : conn_(conn) {
    tx_.emplace(conn_, begin_repeatable_read);
    conn_.exec(fmt::format("SET TRANSACTION SNAPSHOT {}", conn_.quote_literal(snapshot_id)));
}

void SnapshotReader::close() {
    if (!tx_)
        return;
    try {
        tx_->commit();
    } catch (...) {
        tx_.reset();
        throw;
    }
    tx_.reset();
}

} // namespace pgincr::pg
