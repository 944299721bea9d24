-- target_wins, manual (apply/conflicts.hpp): the function of the destination table's
-- trigger. It records in %TOUCHED% each key written by a session that is not
-- pgincr's (the trigger's WHEN skips sessions with pgincr.writer=on, which pgincr
-- sets in its startup packet). Only the first write after pgincr's is recorded: it
-- keeps, in _pgincr_seen_key, the replication key of the version pgincr had written,
-- so a source version at or below it (a row read again) is no conflict. A row the
-- destination inserted has none. SECURITY DEFINER: whoever may write the table need
-- not be able to write pgincr's side table.
CREATE OR REPLACE FUNCTION %FUNCTION%() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgincr$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    INSERT INTO %TOUCHED% (%KEY%, _pgincr_seen_key)
    VALUES (%OLD_KEY%, OLD.%REPKEY%) ON CONFLICT DO NOTHING;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO %TOUCHED% (%KEY%) VALUES (%NEW_KEY%) ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END
$pgincr$
