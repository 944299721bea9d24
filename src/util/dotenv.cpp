#include "util/dotenv.hpp"

#include "util/error.hpp"

#include <cctype>
#include <fmt/format.h>
#include <fstream>
#include <sstream>

namespace pgincr::dotenv {

namespace {

std::string trim(std::string_view s) {
    auto begin = s.find_first_not_of(" \t\r");
    if (begin == std::string_view::npos)
        return {};
    auto end = s.find_last_not_of(" \t\r");
    return std::string(s.substr(begin, end - begin + 1));
}

bool valid_key(const std::string &key) {
    if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0])))
        return false;
    for (char c : key)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
            return false;
    return true;
}

} // namespace

std::map<std::string, std::string> parse(const std::string &text, const std::string &origin) {
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    std::string raw;
    int lineno = 0;
    while (std::getline(in, raw)) {
        ++lineno;
        std::string line = trim(raw);
        if (line.empty() || line[0] == '#')
            continue;
        if (line.rfind("export ", 0) == 0 || line.rfind("export\t", 0) == 0)
            line = trim(line.substr(7));
        auto eq = line.find('=');
        if (eq == std::string::npos)
            throw ConfigError(fmt::format("{}:{}: expected KEY=value", origin, lineno));
        std::string key = trim(line.substr(0, eq));
        if (!valid_key(key))
            throw ConfigError(fmt::format("{}:{}: '{}' is not a valid key", origin, lineno, key));
        std::string rest = trim(line.substr(eq + 1));
        std::string value;
        if (!rest.empty() && (rest[0] == '"' || rest[0] == '\'')) {
            char quote = rest[0];
            std::size_t i = 1;
            bool closed = false;
            for (; i < rest.size(); ++i) {
                char c = rest[i];
                if (c == quote) {
                    closed = true;
                    break;
                }
                if (quote == '"' && c == '\\' && i + 1 < rest.size()) {
                    char n = rest[++i];
                    value += n == 'n' ? '\n' : n == 't' ? '\t' : n;
                    continue;
                }
                value += c;
            }
            if (!closed)
                throw ConfigError(fmt::format("{}:{}: unterminated quote in the value of {}",
                                              origin, lineno, key));
            std::string after = trim(rest.substr(i + 1));
            if (!after.empty() && after[0] != '#')
                throw ConfigError(fmt::format("{}:{}: unexpected text after the quoted value of {}",
                                              origin, lineno, key));
        } else {
            // An unquoted value ends at " #" (an inline comment), as in most dotenv tools.
            auto hash = rest.find(" #");
            if (hash == std::string::npos)
                hash = rest.find("\t#");
            value = trim(rest.substr(0, hash));
        }
        out[key] = value;
    }
    return out;
}

std::map<std::string, std::string> read(const std::filesystem::path &file, bool optional) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        if (optional)
            return {};
        throw ConfigError(fmt::format("{}: cannot read the file", file.string()));
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    return parse(buf.str(), file.string());
}

} // namespace pgincr::dotenv
