-- The cdc apply step, second half: keys whose last change is an insert or an update
-- get that row. A column the change left as an unchanged TOASTed value (its flag in
-- _pgincr_u is '1') takes the latest earlier image of the key in the batch that has it,
-- else the destination's current value; %VALUES% resolves each column so, in a CASE
-- that only looks further for flagged columns. %COLUMNS% and %SET% list and assign.
-- target_wins, manual: SPARE_UPSERT leaves out keys changed in the destination.
INSERT INTO %TARGET% AS d (%COLUMNS%)
SELECT %VALUES%
  FROM (SELECT DISTINCT ON (%KEY%) *
          FROM %STAGING%
         ORDER BY %KEY%, _pgincr_seq DESC) AS l
 WHERE l._pgincr_op <> 'D'%SPARE_UPSERT%
ON CONFLICT (%KEY%) DO %SET%
