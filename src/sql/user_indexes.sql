-- The indexes users built on a replicated table, as statements that rebuild them on the
-- reloaded table under their own names. pgincr's own indexes are left out: they are
-- named "_pgincr_..." (built on the shadow table "_pgincr_load_...", or named so by a
-- take-over), or have the same definition as one the shadow table already has.
-- Indexes behind a constraint a user added are left out too (recreating the index alone
-- would not bring the constraint back).
-- $1: the old table (regclass text); $2: the shadow table (regclass text); $3: the
-- name the new table will have, quoted by libpq
WITH own AS (
    SELECT i.indisunique AS is_unique,
           pg_catalog.regexp_replace(pg_catalog.pg_get_indexdef(i.indexrelid), '^.*? USING ', 'USING ') AS body
      FROM pg_catalog.pg_index i
     WHERE i.indrelid = $2::pg_catalog.regclass
),
old AS (
    SELECT c.relname, i.indisunique AS is_unique,
           pg_catalog.regexp_replace(pg_catalog.pg_get_indexdef(i.indexrelid), '^.*? USING ', 'USING ') AS body
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
     WHERE i.indrelid = $1::pg_catalog.regclass
       AND c.relname NOT LIKE '\_pgincr\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid)
)
SELECT pg_catalog.format('CREATE %sINDEX %I ON %s %s',
                         CASE WHEN o.is_unique THEN 'UNIQUE ' ELSE '' END,
                         o.relname, $3::pg_catalog.text, o.body),
       o.relname
  FROM old o
 WHERE NOT EXISTS (SELECT 1 FROM own w WHERE w.is_unique = o.is_unique AND w.body = o.body)
 ORDER BY o.relname
