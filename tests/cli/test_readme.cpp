// The README's promises: CI runs the test command written at its top, and the demo
// command written next to it runs end to end with source = destination.
#include "support/servers.hpp"

#include <doctest/doctest.h>
#include <fstream>
#include <regex>

using namespace pgincr::test;

namespace {

std::vector<std::string> read_lines(const std::filesystem::path &file) {
    std::ifstream in(file);
    INFO(file.string());
    REQUIRE(in);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

std::string trim(const std::string &s) {
    auto b = s.find_first_not_of(" \t\r");
    auto e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// The commands of README.md's first fenced code block, which must come before the
// first section: the two commands at the very top.
std::vector<std::string> readme_top_commands() {
    auto lines = read_lines(source_dir() / "README.md");
    std::vector<std::string> commands;
    bool inside = false;
    for (const auto &line : lines) {
        std::string t = trim(line);
        if (t.rfind("```", 0) == 0) {
            if (inside)
                return commands;
            inside = true;
            continue;
        }
        if (!inside && t.rfind("## ", 0) == 0)
            FAIL("README.md has no code block before its first section");
        if (inside && !t.empty() && t[0] != '#')
            commands.push_back(t);
    }
    FAIL("README.md has no closed code block");
    return commands;
}

// What a shell script runs, leaving out comments and its own setup (set, cd).
std::vector<std::string> script_commands(const std::filesystem::path &file) {
    std::vector<std::string> commands;
    for (const auto &line : read_lines(file)) {
        std::string t = trim(line);
        if (t.empty() || t[0] == '#' || t.rfind("set ", 0) == 0 || t.rfind("cd ", 0) == 0)
            continue;
        commands.push_back(t);
    }
    return commands;
}

} // namespace

TEST_CASE("readme: .ci/run runs exactly the test command at the top of README.md") {
    auto top = readme_top_commands();
    INFO("README.md's first code block: ", doctest::toString(top));
    REQUIRE(top.size() == 2);
    CHECK(top[0] == "scripts/demo");
    std::string test_command = top[1];
    CHECK(test_command == "scripts/test");
    CHECK(script_commands(source_dir() / ".ci/run") == std::vector<std::string>{test_command});
}

TEST_CASE("readme: scripts/demo runs end to end and ends with source equal to destination") {
    // The demo starts its own two servers; PGINCR_BIN makes it use the binary under
    // test instead of building build/pgincr.
    auto r = run_script("demo", {}, source_dir(), 240);
    const std::string &output = r.out;
    INFO(output);
    REQUIRE(r.exit_code == 0);

    // The second sync reloaded the table whose definition changed.
    CHECK(output.find("[products] reset load: the source table's definition changed") !=
          std::string::npos);
    // The transaction that committed after the second sync arrived with the third.
    CHECK(output.find("late-committed order 7: arrived") != std::string::npos);
    CHECK(output.find("= the open transaction's start") != std::string::npos);
    for (const std::string table : {"customers", "products", "orders", "order_items"}) {
        std::regex equal_line("\\n +" + table + " +([0-9]+) +\\1 +[0-9a-f]{32} equal\\n");
        CHECK_MESSAGE(std::regex_search(output, equal_line), table, " is not reported equal");
    }
    CHECK(output.find("DIFFERENT") == std::string::npos);
    CHECK(output.find("the receiver got 4 POSTs") != std::string::npos);
}
