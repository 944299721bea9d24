-- Columns of one source table, in order, with the type pgincr gives each one in the
-- destination. Built-in types (oid below FirstNormalObjectId) are kept exactly,
-- modifiers included; a domain over a built-in type becomes its base type; enums,
-- composites and extension types, which the destination may lack, become text.
-- $1: the table's oid
SELECT a.attname,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS source_type,
       CASE
           WHEN t.oid < 16384 THEN pg_catalog.format_type(a.atttypid, a.atttypmod)
           WHEN t.typtype = 'd' AND t.typbasetype < 16384
               THEN pg_catalog.format_type(t.typbasetype, t.typtypmod)
           ELSE 'text'
       END AS dest_type,
       a.attnotnull,
       CASE WHEN a.attgenerated = 's' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END
           AS generated,
       a.atttypid::pg_catalog.int8 AS type_oid,
       a.attnum
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1::pg_catalog.oid
   AND a.attnum > 0
   AND NOT a.attisdropped
 ORDER BY a.attnum
