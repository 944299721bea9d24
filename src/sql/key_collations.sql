-- The collation each key column sorts by, spelled out (provider, collate, ctype, ICU
-- locale), with "default" resolved to the database's: two servers whose key columns
-- differ here may order the same keys differently, and the compare engine then groups
-- rows by a hash of the key instead of by ranges (diff/range_diff.hpp).
-- $1: the table, $2: the key columns' names
SELECT a.attname,
       CASE WHEN a.attcollation = 0 THEN ''
            WHEN c.collname = 'default' THEN
                (SELECT pg_catalog.concat_ws(':', pg_catalog.to_jsonb(d) ->> 'datlocprovider',
                                             d.datcollate, d.datctype,
                                             pg_catalog.to_jsonb(d) ->> 'daticulocale')
                   FROM pg_catalog.pg_database d
                  WHERE d.datname = pg_catalog.current_database())
            ELSE pg_catalog.concat_ws(':', c.collprovider, c.collcollate, c.collctype,
                                      pg_catalog.to_jsonb(c) ->> 'colliculocale')
       END
  FROM pg_catalog.pg_attribute a
  LEFT JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation
 WHERE a.attrelid = $1::pg_catalog.regclass
   AND a.attname = ANY ($2::pg_catalog.text[])
   AND NOT a.attisdropped
 ORDER BY a.attname
