-- What users put on a replicated table that a reload must keep: the statements that
-- give the new table the old one's grants (other than its owner's own), comment and
-- owner. Read before the old table is dropped, run after the new one is renamed in,
-- all in the swap transaction.
-- $1: the old table or view (regclass text); $2: the new one's name, quoted by libpq;
-- $3: what it is: TABLE, VIEW or MATERIALIZED VIEW
SELECT pg_catalog.format('GRANT %s ON %s TO %s%s', a.privilege_type, $2::pg_catalog.text,
                         CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                              ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                         CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
  FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
 WHERE c.oid = $1::pg_catalog.regclass
   AND a.grantee <> c.relowner
UNION ALL
SELECT pg_catalog.format('COMMENT ON %s %s IS %L', $3::pg_catalog.text, $2::pg_catalog.text, d.description)
  FROM pg_catalog.pg_description d
 WHERE d.objoid = $1::pg_catalog.regclass
   AND d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.objsubid = 0
UNION ALL
SELECT pg_catalog.format('ALTER %s %s OWNER TO %I', $3::pg_catalog.text, $2::pg_catalog.text, pg_catalog.pg_get_userbyid(c.relowner))
  FROM pg_catalog.pg_class c
 WHERE c.oid = $1::pg_catalog.regclass
   AND c.relowner <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER)
