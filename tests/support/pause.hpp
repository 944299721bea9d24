#pragma once
// PGINCR_PAUSE from a test's side (util/fault.hpp): start pgincr with env(), wait for
// reached(), act on the servers at that exact step, then go().
#include "support/servers.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

namespace pgincr::test {

// A PGINCR_PAUSE point: pgincr stops there until the test says go. Declared after the
// std::future of the run, so that its destructor lets a paused run finish first.
class Pause {
  public:
    Pause(const WorkDir &dir, std::string point)
        : dir_(dir.path() / "pause"), point_(std::move(point)) {
        std::filesystem::create_directories(dir_);
    }
    ~Pause() { go(); }
    std::map<std::string, std::string> env(std::map<std::string, std::string> more = {}) const {
        more["PGINCR_PAUSE"] = point_;
        more["PGINCR_PAUSE_DIR"] = dir_.string();
        return more;
    }
    bool reached() const {
        for (int i = 0; i < 3000; ++i) {
            if (std::filesystem::exists(dir_ / (point_ + ".reached")))
                return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return false;
    }
    void go() const { std::ofstream(dir_ / (point_ + ".go")).put('\n'); }

  private:
    std::filesystem::path dir_;
    std::string point_;
};

} // namespace pgincr::test
