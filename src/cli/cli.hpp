#pragma once
namespace pgincr::cli {
// Parses the command line, runs the command, and maps every error to an exit code
// (the one top-level catch). Exit codes are listed in README.md.
int run(int argc, char **argv);
} // namespace pgincr::cli
