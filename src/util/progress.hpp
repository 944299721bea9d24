#pragma once
// Progress of a long copy: on a terminal a line redrawn in place (after the first
// couple of seconds), otherwise (cron) a log line about every 10 seconds.
#include <chrono>
#include <cstdint>
#include <string>

namespace pgincr {

class Progress {
  public:
    Progress(std::string table, std::string what, std::int64_t estimated_rows);
    ~Progress();
    void update(std::int64_t rows, std::int64_t bytes);
    void finish();

  private:
    std::string line(std::int64_t rows, std::int64_t bytes, double secs) const;
    std::string table_;
    std::string what_;
    std::int64_t estimated_rows_;
    bool tty_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_;
};

} // namespace pgincr
