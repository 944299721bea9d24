#include "util/signals.hpp"

#include "pg/connection.hpp"

#include "util/error.hpp"

#include <atomic>
#include <csignal>
#include <fmt/format.h>
#include <thread>
#include <unistd.h>

namespace pgincr::signals {

namespace {
std::atomic<int> caught{0};
std::atomic<pid_t> child{0};

extern "C" void on_signal(int sig) {
    // The second signal: stop now. Nothing is lost by that, as by a kill -9: what
    // committed has its progress row, and what did not rolls back on the servers.
    if (caught.exchange(sig) != 0) {
        if (pid_t pid = child.load(); pid > 0)
            ::kill(pid, SIGKILL);
        ::_exit(exit_interrupted);
    }
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
void throw_if_interrupted() {
    if (int sig = caught.load())
        throw InterruptedError(fmt::format("interrupted by signal {} ({})", sig, ::strsignal(sig)));
}

bool sleep_for(std::chrono::milliseconds duration) {
    auto until = std::chrono::steady_clock::now() + duration;
    while (!interrupted()) {
        auto left = until - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero())
            return true;
        std::this_thread::sleep_for(
            std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
    }
    return false;
}

void set_child(pid_t pid) {
    child.store(pid);
}
void clear() {
    caught.store(0);
}

} // namespace pgincr::signals
