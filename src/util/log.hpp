#pragma once
// Log lines go to stderr: "2026-01-01T00:00:00Z LEVEL [table] message". Cron mails
// stderr, and stdout stays free for command output (status, check).
#include <fmt/format.h>
#include <string_view>

namespace pgincr::log {

enum class Level { debug, info, warn, error };

void set_min_level(Level level);
void write(Level level, std::string_view table, std::string_view message);

template <typename... Args>
void info(std::string_view table, fmt::format_string<Args...> f, Args &&...args) {
    write(Level::info, table, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(std::string_view table, fmt::format_string<Args...> f, Args &&...args) {
    write(Level::warn, table, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(std::string_view table, fmt::format_string<Args...> f, Args &&...args) {
    write(Level::error, table, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(std::string_view table, fmt::format_string<Args...> f, Args &&...args) {
    write(Level::debug, table, fmt::format(f, std::forward<Args>(args)...));
}

} // namespace pgincr::log
