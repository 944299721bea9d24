-- The rows of the buckets that differ (see diff_buckets.sql), in one pass per side:
-- the bucket, the key as text, the row's md5 when rows are compared, and on the source
-- whether the row is still in flight. $1: the buckets, as an int8 array.
SELECT s._b, %KEYTEXT%, %ROWHASH%, %INFLIGHT%
  FROM (SELECT %BUCKET% AS _b, t.* FROM ONLY %TABLE% AS t WHERE %WHERE%) AS s
 WHERE s._b = ANY ($1::pg_catalog.int8[])
