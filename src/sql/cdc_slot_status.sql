-- A replication slot as the cdc mode reports it (slot safety): whether it is in use,
-- how much WAL it keeps on the source's disk, and whether that WAL is still there
-- (wal_status: reserved, extended, unreserved, lost). $1: the slot's name.
SELECT s.plugin,
       s.active,
       s.confirmed_flush_lsn::text,
       s.wal_status,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::pg_catalog.int8
           AS retained_bytes,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::pg_catalog.int8
           AS behind_bytes
  FROM pg_catalog.pg_replication_slots s
 WHERE s.slot_name = $1
