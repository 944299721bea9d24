-- The late-commit horizon: no transaction still open in this database can write a
-- row whose now()-based timestamp is older than this. Read before the sync's snapshot
-- is taken; the saved mark never moves past it.
--   * open transactions: pg_stat_activity.xact_start is the transaction's now();
--   * prepared transactions: their start is unknown, so their PREPARE time minus the
--     fallback window is used;
--   * a role that cannot see other roles' sessions (no pg_read_all_stats, not a
--     superuser) falls back to a fixed window before the current time;
--   * a hot standby's pg_stat_activity shows only its own sessions, never the
--     primary's transactions: the same window, counted back from the last commit it
--     replayed (so replay lag widens it), unless the caller reads this on the primary;
--   * a backend fixes now() a moment before it publishes xact_start: the slack covers
--     a transaction that started in that gap.
-- The oldest of the transactions seen is reported too (pid, application_name, state,
-- how long it has been open), for the lag alert's cause.
-- $1: the fallback window in seconds; $2: the slack in milliseconds
WITH visibility AS (
    SELECT pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE') OR r.rolsuper AS sees_all,
           pg_catalog.pg_is_in_recovery() AS in_recovery
      FROM pg_catalog.pg_roles r
     WHERE r.rolname = CURRENT_USER
),
open_xacts AS (
    SELECT a.xact_start AS started, a.xact_start AS opened, a.pid, a.application_name,
           a.state
      FROM pg_catalog.pg_stat_activity a
     WHERE a.datname = pg_catalog.current_database()
       AND a.xact_start IS NOT NULL
       AND a.pid <> pg_catalog.pg_backend_pid()
       AND a.backend_type NOT IN ('autovacuum worker', 'walsender')
    UNION ALL
    SELECT p.prepared - pg_catalog.make_interval(secs => $1::pg_catalog.int4), p.prepared,
           NULL, NULL, 'prepared transaction ' || pg_catalog.quote_literal(p.gid)
      FROM pg_catalog.pg_prepared_xacts p
     WHERE p.database = pg_catalog.current_database()
),
oldest AS (
    SELECT * FROM open_xacts ORDER BY started LIMIT 1
)
SELECT (LEAST(
           pg_catalog.clock_timestamp(),
           (SELECT min(started) FROM open_xacts),
           CASE WHEN v.sees_all AND NOT v.in_recovery THEN NULL
                ELSE LEAST(pg_catalog.clock_timestamp(), pg_catalog.pg_last_xact_replay_timestamp())
                     - pg_catalog.make_interval(secs => $1::pg_catalog.int4)
           END)
        - pg_catalog.make_interval(secs => $2::pg_catalog.float8 / 1000))::pg_catalog.text AS horizon,
       v.sees_all,
       (SELECT count(*) FROM open_xacts) AS open_transactions,
       (SELECT min(started) FROM open_xacts)::pg_catalog.text AS oldest_start,
       v.in_recovery,
       CASE WHEN v.in_recovery THEN NULL
            ELSE pg_catalog.pg_current_wal_insert_lsn()::pg_catalog.text
       END AS wal_lsn,
       o.pid AS oldest_pid,
       o.application_name AS oldest_application_name,
       o.state AS oldest_state,
       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - o.opened)::pg_catalog.float8
           AS oldest_age_seconds
  FROM visibility v
  LEFT JOIN oldest o ON true
