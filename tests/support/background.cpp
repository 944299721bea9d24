#include "support/background.hpp"

#include <csignal>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <thread>

namespace bp = boost::process;

namespace pgincr::test {

namespace {
int counter = 0;
}

Background::Background(const WorkDir &dir, const std::vector<std::string> &args,
                       const std::map<std::string, std::string> &extra_env)
    : log_file_(dir.path() / ("background-" + std::to_string(++counter) + ".log")),
      child_(env_or_fail("PGINCR_TEST_BIN"), bp::args(args), bp::start_dir(dir.path().string()),
             (bp::std_out & bp::std_err) > log_file_.string(), bp::std_in < bp::null,
             pgincr_environment(extra_env)) {}

Background::~Background() {
    if (!code_ && child_.running()) {
        ::kill(child_.id(), SIGKILL);
        child_.wait();
    }
}

std::string Background::log() const {
    std::ifstream in(log_file_);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::size_t Background::count(const std::string &text) const {
    auto all = log();
    std::size_t n = 0;
    for (auto pos = all.find(text); pos != std::string::npos; pos = all.find(text, pos + 1))
        ++n;
    return n;
}

bool Background::wait_for(const std::string &text, std::chrono::seconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (log().find(text) != std::string::npos)
            return true;
        if (!running())
            return log().find(text) != std::string::npos;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

void Background::signal(int sig) {
    ::kill(child_.id(), sig);
}

bool Background::running() {
    return !code_ && child_.running();
}

int Background::wait() {
    if (!code_) {
        child_.wait();
        int status = child_.native_exit_code();
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    return *code_;
}

} // namespace pgincr::test
