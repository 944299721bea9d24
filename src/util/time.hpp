#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace pgincr::timeutil {
// "2026-01-01T00:00:00Z" (seconds) or with milliseconds: "2026-01-01T00:00:00.123Z".
std::string iso_utc(std::chrono::system_clock::time_point t, bool millis = false);
// The inverse of iso_utc (with or without milliseconds); nullopt when `text` is not one.
std::optional<std::chrono::system_clock::time_point> parse_iso_utc(const std::string &text);
std::int64_t ms_between(std::chrono::steady_clock::time_point a,
                        std::chrono::steady_clock::time_point b);
} // namespace pgincr::timeutil
