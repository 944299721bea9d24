#pragma once
// Text helpers for the SQL templates of src/sql/: "%NAME%" placeholders filled with
// fragments the caller built (identifiers already quoted by libpq, never values).
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

// A text[] literal, {"a","b\"c"}, to pass `items` as one parameter ($1::text[]).
std::string array_literal(const std::vector<std::string> &items);

} // namespace pgincr::text
