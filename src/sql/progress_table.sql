-- pgincr's catalog in the destination schema: one row per table pgincr manages, with
-- the progress that its rows reflect. The row is written in the same transaction as
-- the swap or the merge, so the rows and the mark they cover can never disagree (a
-- destination restored from a backup brings back the mark of that backup). pgincr
-- creates, truncates, replaces or drops only tables listed here (or known from
-- sync-state/, or taken over from incremental-replication). `lsn` is for the coming
-- change-data-capture mode: the last applied commit. `deletes_checked_at`: when the
-- last delete check committed ("delete_check_seconds").
-- %TABLE% is replaced by the caller with the name quoted by libpq.
CREATE TABLE IF NOT EXISTS %TABLE% (
    destination     text PRIMARY KEY,
    source_table    text NOT NULL,
    replication_key text NOT NULL DEFAULT '',
    key_type        text NOT NULL DEFAULT '',
    watermark       text,
    fingerprint     text NOT NULL DEFAULT '',
    dest_signature  text NOT NULL DEFAULT '',
    options         text NOT NULL DEFAULT '',
    lsn             pg_catalog.pg_lsn,
    deletes_checked_at timestamptz,
    registered_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE %TABLE% IS
    'pgincr: the tables of this schema that pgincr manages, and their progress (see pgincr''s README, "What pgincr creates in the destination")';
