#include "util/time.hpp"

#include <cstdio>
#include <cstdlib>
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

std::optional<std::chrono::system_clock::time_point> parse_iso_utc(const std::string &text) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ms = 0, used = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) !=
        6)
        return std::nullopt;
    std::string rest = text.substr(static_cast<std::size_t>(used));
    if (rest.size() == 5 && rest[0] == '.' && rest[4] == 'Z')
        ms = std::atoi(rest.substr(1, 3).c_str());
    else if (rest != "Z")
        return std::nullopt;
    using namespace std::chrono;
    auto day = year_month_day{year{y}, month{static_cast<unsigned>(mo)},
                              std::chrono::day{static_cast<unsigned>(d)}};
    if (!day.ok())
        return std::nullopt;
    return system_clock::time_point(sys_days(day)) + hours(h) + minutes(mi) + seconds(s) +
           milliseconds(ms);
}

std::int64_t ms_between(std::chrono::steady_clock::time_point a,
                        std::chrono::steady_clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

} // namespace pgincr::timeutil
