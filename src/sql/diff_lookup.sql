-- Keys seen on one side only, looked up by equality on the other: a range test can
-- disagree between two servers whose collations order text differently, an equality
-- test cannot. Nothing is reported as missing or extra before this lookup.
SELECT %KEYTEXT%, %ROWHASH%, %INFLIGHT%
  FROM ONLY %TABLE% AS s
 WHERE %MATCH%%WHERE%
