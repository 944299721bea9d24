-- Sequences owned by the table (serial and identity columns) that the role cannot
-- read. pg_dump --table dumps a table's owned sequences with it, so it fails on them.
SELECT pg_catalog.format('%I.%I', n.nspname, s.relname)
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.refobjid = $1
   AND d.deptype IN ('a', 'i')
   -- CASE: the planner may evaluate this before the join keeps sequences only.
   AND CASE WHEN s.relkind = 'S' THEN NOT pg_catalog.has_sequence_privilege(s.oid, 'SELECT') END
 ORDER BY 1
