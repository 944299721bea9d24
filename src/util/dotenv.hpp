#pragma once
// A dotenv reader: KEY=value lines, comments, single/double quotes, an optional
// `export ` prefix and blanks around '='. Knows nothing of pgincr's keys.
#include <filesystem>
#include <map>
#include <string>

namespace pgincr::dotenv {

// Parses text; `origin` names the file in error messages. Throws ConfigError
// naming the file and line of a malformed entry.
std::map<std::string, std::string> parse(const std::string &text, const std::string &origin);

// Reads and parses a file. A missing file is a ConfigError unless `optional`.
std::map<std::string, std::string> read(const std::filesystem::path &file, bool optional);

} // namespace pgincr::dotenv
