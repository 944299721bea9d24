#pragma once
// SIGINT/SIGTERM handling: the handler records the signal, cancels running queries
// (PQcancel) and forwards the signal to a running child (pg_dump). The current
// table then fails, its transaction rolls back, and the run stops. A second signal
// ends the process at once (exit 4), as safely as a kill -9.
#include <chrono>
#include <sys/types.h>

namespace pgincr::signals {

void install();
bool interrupted();
int last_signal();
// Throws InterruptedError once a signal came: called between the steps of a table, so
// that a signal that arrived between two statements does not wait for the next one.
void throw_if_interrupted();
// Sleeps, but returns early (false) when a signal comes.
bool sleep_for(std::chrono::milliseconds duration);
void set_child(pid_t pid); // 0: no child running
// For tests: forget a previous interruption.
void clear();

} // namespace pgincr::signals
