#pragma once
// Text helpers for the SQL templates of src/sql/: "%NAME%" placeholders filled with
// fragments the caller built (identifiers already quoted by libpq, never values).
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgincr::text {

// Every occurrence of `from` in `s` replaced by `to`.
std::string replace_all(std::string s, std::string_view from, const std::string &to);

// `tmpl` with each %NAME% replaced by its value.
std::string fill(std::string_view tmpl,
                 const std::vector<std::pair<std::string, std::string>> &values);

// A PostgreSQL array literal, every element quoted ({"a","b\"c",NULL}): the value of a
// typed array parameter ($1::text[], $1::int8[]), never spliced into SQL.
std::string array_literal(const std::vector<std::optional<std::string>> &items);

} // namespace pgincr::text
