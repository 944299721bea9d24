#pragma once
// Test points. When PGINCR_FAULT names a point, the process kills itself with SIGKILL
// right there, exactly as `kill -9` would (the crash tests). When PGINCR_PAUSE names
// it (alone or in a comma-separated list), the process creates
// $PGINCR_PAUSE_DIR/<point>.reached and waits for <point>.go, so that a test can act
// on the servers at that exact step (kill a session, restart a server) without
// guessing with sleeps. A point reached by several threads pauses each of them. Unset
// (always, outside the test suite) a point costs two getenv calls.
namespace pgincr::fault {
void point(const char *name);
}
