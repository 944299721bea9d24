-- The source table and what `check` and the sync need to know about it.
-- $1: schema, $2: table
SELECT c.oid::pg_catalog.int8,
       c.relkind,
       greatest(c.reltuples, 0)::pg_catalog.int8 AS estimated_rows,
       pg_catalog.has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') AS can_write,
       pg_catalog.has_table_privilege(c.oid, 'SELECT') AS can_select,
       ARRAY(SELECT a.attname
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_attribute a
                 ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
              WHERE i.indrelid = c.oid AND i.indisprimary
              ORDER BY pg_catalog.array_position(i.indkey::pg_catalog.int2[], a.attnum))
           AS primary_key
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1
   AND c.relname = $2
