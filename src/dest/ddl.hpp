#pragma once
// Destination DDL: the tables pgincr builds (the shadow table of a load, the final
// table's unique index, <table>_stg) and the swap that replaces a table atomically.
// Used by the full-load mode, the incremental mode's take-over and, later, every mode
// that reloads a table. Every statement runs in the caller's transaction.
#include "config.hpp"
#include "pg/connection.hpp"
#include "source/catalog.hpp"

#include <string>

namespace pgincr::ddl {

// "<destination>_stg", as the old tool named it.
std::string staging_name(const std::string &destination);
// The shadow table a load fills: short and fixed-length, so that it never collides
// with a user's table after the server truncates long identifiers to 63 bytes.
std::string shadow_name(const std::string &destination);

// CREATE SCHEMA when it is missing (outside any transaction).
void ensure_schema(pg::Connection &dst, const std::string &schema);

// CREATE TABLE `qualified` with the source's columns, as the destination types them,
// and `_pgincr_deleted_at timestamptz` last for an entry with "deletes": "soft".
void create_table(pg::Connection &dst, const std::string &qualified,
                  const catalog::SourceTable &table, const config::Table &cfg);

// The unique index the merge needs (and, with "indexes": "all", the source's other
// indexes, as non-unique ones) on `qualified_table`.
// `name_prefix` names them "<prefix>u", "<prefix>1" ... instead of the server's default
// (a take-over builds them on the old tool's table itself, and a later reload must
// recognise them as pgincr's: sql/user_indexes.sql).
void create_indexes(pg::Connection &dst, const std::string &qualified_table,
                    const config::Table &cfg, const catalog::SourceTable &table,
                    const std::string &name_prefix = "");

// (Re)creates the UNLOGGED staging table with the columns pgincr writes.
void create_staging(pg::Connection &dst, const std::string &schema, const config::Table &cfg,
                    const catalog::SourceTable &table);

// Replaces the destination table by the shadow table, keeping the old table's grants,
// comment and owner. The caller's transaction makes it atomic; the session's
// lock_timeout bounds the wait for readers of the old table.
void swap_in(pg::Connection &dst, const std::string &schema, const std::string &shadow,
             const std::string &destination);

} // namespace pgincr::ddl
