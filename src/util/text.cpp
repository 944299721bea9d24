#include "util/text.hpp"

namespace pgincr::text {

std::string replace_all(std::string s, std::string_view from, const std::string &to) {
    for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
        s.replace(at, from.size(), to);
    return s;
}

std::string fill(std::string_view tmpl,
                 const std::vector<std::pair<std::string, std::string>> &values) {
    std::string s(tmpl);
    for (const auto &[name, value] : values)
        s = replace_all(std::move(s), "%" + name + "%", value);
    return s;
}

std::string array_literal(const std::vector<std::optional<std::string>> &items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i)
            out += ',';
        if (!items[i]) {
            out += "NULL";
            continue;
        }
        out += '"';
        for (char c : *items[i]) {
            if (c == '"' || c == '\\')
                out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

} // namespace pgincr::text
