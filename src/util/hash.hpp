#pragma once
#include <string>
#include <string_view>

namespace pgincr::hash {
std::string sha256_hex(std::string_view data);
std::string hmac_sha256_hex(std::string_view key, std::string_view data);
} // namespace pgincr::hash
