-- The bounds of a differing range's sub-ranges: every _step-th key of the range, in
-- index order. Only those keys cross the network. No ORDER BY: the arms are joined by
-- UNION ALL, and the caller orders each range's keys by their position (_pgincr_rn).
SELECT r._i, s._pgincr_rn, %KEYTEXT%
  FROM unnest(%ARRAYS%) AS r(%COLUMNS%)
 CROSS JOIN LATERAL (
       SELECT %KEY%, pg_catalog.row_number() OVER (ORDER BY %KEY%) AS _pgincr_rn
         FROM ONLY %TABLE% AS t
        WHERE %RANGE%) AS s
 WHERE s._pgincr_rn % r._step = 0
