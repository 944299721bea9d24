-- A small differing range's rows: the key as text and, when rows are compared, an md5
-- of the row's text (%ROWHASH%), plus on the source whether the row is still in flight
-- (its replication key at or after the saved mark, %INFLIGHT%).
SELECT r._i, %KEYTEXT%, %ROWHASH%, %INFLIGHT%
  FROM unnest(%ARRAYS%) AS r(%COLUMNS%)
 CROSS JOIN LATERAL (
       SELECT *
         FROM ONLY %TABLE% AS t
        WHERE %RANGE%) AS s
