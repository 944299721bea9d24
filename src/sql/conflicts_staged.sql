-- target_wins, manual (apply/conflicts.hpp), before the merge: the staged rows (the
-- merge's dedup: the highest key per unique value) whose key was changed in the
-- destination, and whose source version is newer than the one already accounted for
-- (_pgincr_seen_key), are this sync's conflicts. Each is counted once: the source
-- version is remembered. %RECORD% counts them, or (manual) writes both versions into
-- <destination>_conflicts.
WITH s AS (
  SELECT DISTINCT ON (%KEY%) *
    FROM %STAGING%
   ORDER BY %KEY%, %REPKEY% DESC
), c AS (
  UPDATE %TOUCHED% AS t
     SET _pgincr_seen_key = s.%REPKEY%
    FROM s
   WHERE %MATCH_TS%
     AND (t._pgincr_seen_key IS NULL OR s.%REPKEY% > t._pgincr_seen_key)
  RETURNING %T_KEY%,
            pg_catalog.to_jsonb(t) - '{_pgincr_touched_at,_pgincr_seen_key,_pgincr_source_deleted_at}'::text[]
              AS _pgincr_key,
            pg_catalog.to_jsonb(s) AS _pgincr_row
)
%RECORD%
