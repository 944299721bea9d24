-- The cdc apply step (cdc/apply.hpp), first half: keys whose last change in the batch
-- is a delete leave the destination. %TARGET%, %STAGING%: qualified names; %KEY%: the
-- unique columns; %MATCH%: d.k = l.k for each. target_wins, manual: SPARE_DELETE
-- leaves out keys changed in the destination.
DELETE FROM ONLY %TARGET% AS d
 USING (SELECT DISTINCT ON (%KEY%) %KEY%, _pgincr_op
          FROM %STAGING%
         ORDER BY %KEY%, _pgincr_seq DESC) AS l
 WHERE l._pgincr_op = 'D' AND %MATCH%%SPARE_DELETE%
