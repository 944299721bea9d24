#pragma once
// build/pgincr running in the background (`pgincr watch`, a sync to interrupt): its
// stdout and stderr go to a file the test reads while it runs, and the test signals it
// and waits for its exit. The destructor kills a process the test left running.
#include "support/servers.hpp"

#include <boost/process.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgincr::test {

class Background {
  public:
    Background(const WorkDir &dir, const std::vector<std::string> &args,
               const std::map<std::string, std::string> &extra_env = {});
    ~Background();
    Background(const Background &) = delete;
    Background &operator=(const Background &) = delete;

    // Everything it wrote so far (stdout and stderr, interleaved).
    std::string log() const;
    // Waits until the log holds `text` (true), or until it exits or `limit` passes
    // (false).
    bool wait_for(const std::string &text, std::chrono::seconds limit = std::chrono::seconds(120));
    // How many times the log holds `text`.
    std::size_t count(const std::string &text) const;
    void signal(int sig);
    // Waits for the exit: the exit code, or -1 when a signal ended it.
    int wait();
    bool running();

  private:
    std::filesystem::path log_file_;
    boost::process::child child_;
    std::optional<int> code_;
};

} // namespace pgincr::test
