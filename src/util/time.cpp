#include "util/time.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace pgincr::timeutil {

std::string iso_utc(std::chrono::system_clock::time_point t, bool millis) {
    auto secs = std::chrono::floor<std::chrono::seconds>(t);
    std::string out = fmt::format("{:%Y-%m-%dT%H:%M:%S}", secs);
    if (millis) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
        out += fmt::format(".{:03}", ms);
    }
    return out + "Z";
}

std::int64_t ms_between(std::chrono::steady_clock::time_point a,
                        std::chrono::steady_clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

} // namespace pgincr::timeutil
