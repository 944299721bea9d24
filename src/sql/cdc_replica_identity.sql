-- Whether a table's replica identity carries its unique columns, so that the cdc mode
-- gets the key of every updated and deleted row: the relation's identity setting
-- (d default = primary key, i index, f full, n nothing) and the key columns it sends,
-- in index order.
-- $1: the table's oid
SELECT c.relreplident::text,
       ARRAY(SELECT a.attname
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.generate_subscripts(i.indkey, 1) AS k ON true
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k]
              WHERE i.indrelid = c.oid AND k < i.indnkeyatts
                AND ((c.relreplident = 'd' AND i.indisprimary)
                     OR (c.relreplident = 'i' AND i.indisreplident))
              ORDER BY k) AS identity_columns
  FROM pg_catalog.pg_class c
 WHERE c.oid = $1::pg_catalog.oid
