#include "util/log.hpp"

#include "util/time.hpp"

#include <chrono>
#include <cstdio>
#include <mutex>

namespace pgincr::log {

namespace {
Level min_level = Level::info;
std::mutex log_mutex;

const char *name(Level level) {
    switch (level) {
    case Level::debug:
        return "DEBUG";
    case Level::info:
        return "INFO";
    case Level::warn:
        return "WARN";
    case Level::error:
        return "ERROR";
    }
    return "?";
}
} // namespace

void set_min_level(Level level) {
    min_level = level;
}

void write(Level level, std::string_view table, std::string_view message) {
    if (level < min_level)
        return;
    std::string line =
        fmt::format("{} {:<5}", timeutil::iso_utc(std::chrono::system_clock::now()), name(level));
    if (!table.empty())
        line += fmt::format(" [{}]", table);
    line += ' ';
    line += message;
    line += '\n';
    std::lock_guard lock(log_mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

} // namespace pgincr::log
