-- The compare engine (diff/range_diff.hpp): one count and one checksum per range of
-- the key, each range one index range scan, so that a whole table costs one
-- index-ordered pass and only numbers cross the network. The checksum is the sum of
-- 32-bit hashes (of the key, or of the row's text), as pgcopydb's compare does.
-- %ARRAYS%: typed array parameters, one range per element; %COLUMNS%: their names
-- (_i, _lo1.., _hi1..); %RANGE%: the range test on t plus the side's predicate.
-- unnest() of several arrays is FROM-clause syntax, which cannot be schema-qualified;
-- pg_catalog is searched first anyway.
SELECT r._i, a.n, a.h
  FROM unnest(%ARRAYS%) AS r(%COLUMNS%)
 CROSS JOIN LATERAL (
       SELECT pg_catalog.count(*) AS n, coalesce(pg_catalog.sum(%HASH%), 0) AS h
         FROM ONLY %TABLE% AS t
        WHERE %RANGE%) AS a
