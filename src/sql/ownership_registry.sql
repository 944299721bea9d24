-- The destination tables pgincr manages, one row each, in the destination schema.
-- pgincr creates, truncates, replaces or drops a table (and its <table>_stg) only when
-- it is listed here, when sync-state/ holds its state, or when it takes over the old
-- tool's table. The row is written in the same transaction as the swap that created
-- the table, so the two cannot disagree.
-- Identifiers are filled in by the caller, quoted by libpq.
CREATE TABLE IF NOT EXISTS %REGISTRY% (
    destination   text PRIMARY KEY,
    source_table  text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE %REGISTRY% IS
    'pgincr: the tables of this schema that pgincr manages (see pgincr''s README, "What pgincr creates in the destination")';
