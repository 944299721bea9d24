-- target_wins, manual (cdc/apply.hpp), before the apply step: the batch's last change
-- of each key is a conflict when its key, or for a row that moved to a new key the old
-- one whose destination row it would read, was changed in the destination (recorded
-- in <destination>_pgincr_touched). The upsert and the delete leave these keys out.
-- The final statement counts them, or (manual) writes them into
-- <destination>_conflicts: the source version
-- (NULL for a delete) without the TOASTed values the change left unchanged (the stream
-- does not carry them), and the destination's.
WITH c AS (
  SELECT l.*
    FROM (SELECT DISTINCT ON (%KEY%) *
            FROM %STAGING%
           ORDER BY %KEY%, _pgincr_seq DESC) AS l
   WHERE %TOUCHED_L%
)
%RECORD%
