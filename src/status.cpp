#include "status.hpp"
namespace pgincr::status {
int run(const cli::Options &) {
    return 1;
}
int reset(const cli::Options &) {
    return 1;
}
} // namespace pgincr::status
