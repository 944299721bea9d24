#pragma once
// Crash points for the kill -9 tests: when PGINCR_FAULT names this point, the
// process kills itself with SIGKILL right there, exactly as `kill -9` would. Unset
// (always, outside the test suite) it costs one getenv per point.
namespace pgincr::fault {
void point(const char *name);
}
