-- The compare engine when the two servers order the key differently (its columns'
-- collations differ): ranges of the key would hold other rows on each side, so rows
-- are grouped by a hash of the key's text instead, which both sides compute alike. One
-- pass per side: a count and a checksum per bucket. %BUCKET% is the bucket of a row of
-- t, %HASH% its checksum term, %WHERE% the side's predicate (or true).
SELECT %BUCKET% AS _b, pg_catalog.count(*) AS n, coalesce(pg_catalog.sum(%HASH%), 0) AS h
  FROM ONLY %TABLE% AS t
 WHERE %WHERE%
 GROUP BY 1
