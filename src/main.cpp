#include "cli/cli.hpp"

int main(int argc, char **argv) {
    return pgincr::cli::run(argc, argv);
}
