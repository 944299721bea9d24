#include "util/fault.hpp"

#include "util/signals.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <thread>

namespace pgincr::fault {

namespace {

// Announces the point with <dir>/<name>.reached, then waits (at most two minutes)
// for the test to create <dir>/<name>.go.
void pause_at(const char *name) {
    const char *dir = std::getenv("PGINCR_PAUSE_DIR");
    if (!dir)
        return;
    std::filesystem::path base(dir);
    std::ofstream(base / (std::string(name) + ".reached")).put('\n');
    auto go = base / (std::string(name) + ".go");
    // A signal ends the pause too, so that a test can interrupt pgincr right there.
    for (int i = 0; i < 6000 && !std::filesystem::exists(go) && !signals::interrupted(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

} // namespace

void point(const char *name) {
    const char *want = std::getenv("PGINCR_FAULT");
    if (want && std::strcmp(want, name) == 0)
        std::raise(SIGKILL);
    // PGINCR_PAUSE may name several points, comma-separated.
    const char *pause = std::getenv("PGINCR_PAUSE");
    if (!pause)
        return;
    std::string_view list(pause), want_name(name);
    while (!list.empty()) {
        auto comma = list.find(',');
        if (list.substr(0, comma) == want_name) {
            pause_at(name);
            return;
        }
        if (comma == std::string_view::npos)
            break;
        list.remove_prefix(comma + 1);
    }
}

} // namespace pgincr::fault
