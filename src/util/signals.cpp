#include "util/signals.hpp"

#include "pg/connection.hpp"

#include <atomic>
#include <csignal>

namespace pgincr::signals {

namespace {
std::atomic<int> caught{0};
std::atomic<pid_t> child{0};

extern "C" void on_signal(int sig) {
    caught.store(sig);
    if (pid_t pid = child.load(); pid > 0)
        ::kill(pid, SIGTERM);
    pg::cancel_all_from_signal_handler();
}
} // namespace

void install() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    // A vanished HTTP peer or child must not kill the run.
    std::signal(SIGPIPE, SIG_IGN);
}

bool interrupted() {
    return caught.load() != 0;
}
int last_signal() {
    return caught.load();
}
void set_child(pid_t pid) {
    child.store(pid);
}
void clear() {
    caught.store(0);
}

} // namespace pgincr::signals
