#pragma once
// SIGINT/SIGTERM handling: the handler records the signal, cancels running queries
// (PQcancel) and forwards the signal to a running child (pg_dump). The current
// table then fails, its transaction rolls back, and the run stops.
#include <sys/types.h>

namespace pgincr::signals {

void install();
bool interrupted();
int last_signal();
void set_child(pid_t pid); // 0: no child running
// For tests: forget a previous interruption.
void clear();

} // namespace pgincr::signals
