#include "util/progress.hpp"

#include "util/log.hpp"

#include <cstdio>
#include <fmt/format.h>
#include <unistd.h>

namespace pgincr {

Progress::Progress(std::string table, std::string what, std::int64_t estimated_rows)
    : table_(std::move(table)), what_(std::move(what)), estimated_rows_(estimated_rows),
      tty_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()), last_(start_) {}

Progress::~Progress() {
    finish();
}

std::string Progress::line(std::int64_t rows, std::int64_t bytes, double secs) const {
    double mb = static_cast<double>(bytes) / (1024.0 * 1024.0);
    std::string text = fmt::format("{}: {} rows, {:.0f} MB, {:.1f} MB/s", what_, rows, mb,
                                   secs > 0 ? mb / secs : 0);
    if (estimated_rows_ > 0 && rows > 0 && rows <= estimated_rows_) {
        double frac = static_cast<double>(rows) / static_cast<double>(estimated_rows_);
        double eta = secs / frac - secs;
        text += fmt::format(", {:.0f}%, ETA {:.0f}s", frac * 100.0, eta);
    }
    return text;
}

void Progress::update(std::int64_t rows, std::int64_t bytes) {
    auto now = std::chrono::steady_clock::now();
    double since_start = std::chrono::duration<double>(now - start_).count();
    double since_last = std::chrono::duration<double>(now - last_).count();
    if (tty_) {
        if (since_start < 2.0 || since_last < 0.5)
            return;
        std::string text = line(rows, bytes, since_start);
        std::fprintf(stderr, "\r[%s] %s\033[K", table_.c_str(), text.c_str());
        std::fflush(stderr);
        drawn_ = true;
    } else {
        if (since_last < 10.0)
            return;
        log::info(table_, "{}", line(rows, bytes, since_start));
    }
    last_ = now;
}

void Progress::finish() {
    if (drawn_) {
        std::fputs("\r\033[K", stderr);
        std::fflush(stderr);
        drawn_ = false;
    }
}

} // namespace pgincr
