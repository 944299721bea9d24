-- The source table's indexes, as key expressions and predicate, so that they can be
-- rebuilt on the destination table under another name ("indexes": "all").
-- $1: the table's oid
SELECT am.amname,
       i.indisunique,
       ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k, true)
               FROM pg_catalog.generate_series(1, i.indnkeyatts) AS k) AS key_exprs,
       pg_catalog.pg_get_expr(i.indpred, i.indrelid, true) AS predicate,
       i.indkey[0] AS first_attnum,
       -- plain key columns by name (expressions left out), to spot the unique index
       -- pgincr builds itself
       ARRAY(SELECT a.attname
               FROM pg_catalog.generate_series(0, i.indnkeyatts - 1) AS k
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k]
              ORDER BY k) AS key_columns,
       i.indisvalid
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_catalog.pg_am am ON am.oid = ic.relam
 WHERE i.indrelid = $1::pg_catalog.oid
 ORDER BY ic.relname
