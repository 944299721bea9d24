#include "util/fault.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>

namespace pgincr::fault {

void point(const char *name) {
    const char *want = std::getenv("PGINCR_FAULT");
    if (want && std::strcmp(want, name) == 0)
        std::raise(SIGKILL);
}

} // namespace pgincr::fault
