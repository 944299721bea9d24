-- Bounds for the first ranges of a key that is not a single integer: a sample of
-- whole pages (cheap: only %PCT% percent of the table is read), sorted by the key.
SELECT %KEYTEXT%
  FROM ONLY %TABLE% AS s TABLESAMPLE SYSTEM (%PCT%)
 ORDER BY %SKEY%
