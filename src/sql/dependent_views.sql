-- The views and materialized views that depend on a table, directly or through other
-- views, shallowest first, with what recreating them takes. pg_get_viewdef() is read
-- in pgincr's empty search_path, so every name in the definition is qualified.
-- $1: the table (regclass text)
WITH RECURSIVE deps (oid, depth) AS (
    SELECT r.ev_class, 1
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refobjid = $1::pg_catalog.regclass
       AND r.ev_class <> $1::pg_catalog.regclass
    UNION
    SELECT r.ev_class, deps.depth + 1
      FROM deps
      JOIN pg_catalog.pg_depend d ON d.refobjid = deps.oid
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
      JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
     WHERE r.ev_class <> deps.oid
)
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS qualified,
       CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END AS kind,
       pg_catalog.pg_get_viewdef(c.oid) AS definition,
       coalesce(pg_catalog.array_to_string(c.reloptions, ', '), '') AS options,
       max(deps.depth) AS depth
  FROM deps
  JOIN pg_catalog.pg_class c ON c.oid = deps.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm') -- a rule on another table that writes here is no view
 GROUP BY n.nspname, c.relname, c.relkind, c.oid, c.reloptions
 ORDER BY max(deps.depth), 1
