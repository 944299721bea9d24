-- target_wins, manual (apply/conflicts.hpp), in the delete check: keys deleted in the
-- source (%MATCH% on alias t, with the check's key arrays) that were changed in the
-- destination are not deleted; each is a conflict once (_pgincr_source_deleted_at).
-- %RECORD% counts them, or (manual) writes them into <destination>_conflicts with no
-- source version.
WITH c AS (
  UPDATE %TOUCHED% AS t
     SET _pgincr_source_deleted_at = pg_catalog.now()
   WHERE %MATCH% AND t._pgincr_source_deleted_at IS NULL
  RETURNING %T_KEY%,
            pg_catalog.to_jsonb(t) - '{_pgincr_touched_at,_pgincr_seen_key,_pgincr_source_deleted_at}'::text[]
              AS _pgincr_key,
            NULL::pg_catalog.jsonb AS _pgincr_row
)
%RECORD%
