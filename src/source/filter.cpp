#include "source/filter.hpp"

#include "util/error.hpp"

#include <cctype>
#include <fmt/format.h>

namespace pgincr::filter {

std::vector<Placeholder> placeholders(const std::string &s) {
    std::vector<Placeholder> out;
    std::size_t i = 0, n = s.size();
    auto ident_char = [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' ||
               static_cast<unsigned char>(c) >= 0x80;
    };
    while (i < n) {
        char c = s[i];
        if (c == '\'') { // string literal; E'' strings escape with backslash
            bool escapes = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e');
            ++i;
            while (i < n) {
                if (escapes && s[i] == '\\') {
                    i += 2;
                    continue;
                }
                if (s[i] == '\'') {
                    if (i + 1 < n && s[i + 1] == '\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                ++i;
            }
            ++i;
        } else if (c == '"') {
            i = s.find('"', i + 1);
            i = i == std::string::npos ? n : i + 1;
        } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
            i = s.find('\n', i);
            i = i == std::string::npos ? n : i + 1;
        } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            i = s.find("*/", i + 2);
            i = i == std::string::npos ? n : i + 2;
        } else if (c == '$') {
            bool after_ident = i > 0 && ident_char(s[i - 1]);
            if (!after_ident && i + 1 < n && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
                std::size_t j = i + 1;
                while (j < n && std::isdigit(static_cast<unsigned char>(s[j])))
                    ++j;
                out.push_back({i, j, std::stoi(s.substr(i + 1, j - i - 1))});
                i = j;
                continue;
            }
            // A dollar-quoted string: $tag$ ... $tag$
            std::size_t j = i + 1;
            while (j < n && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_'))
                ++j;
            if (!after_ident && j < n && s[j] == '$') {
                std::string tag = s.substr(i, j - i + 1);
                auto close = s.find(tag, j + 1);
                i = close == std::string::npos ? n : close + tag.size();
            } else {
                i = j;
            }
        } else {
            ++i;
        }
    }
    return out;
}

std::string rewrite(const std::string &sql, const std::function<std::string(int)> &replacement) {
    std::string out;
    std::size_t pos = 0;
    for (const auto &p : placeholders(sql)) {
        out += sql.substr(pos, p.begin - pos);
        out += replacement(p.number);
        pos = p.end;
    }
    return out + sql.substr(pos);
}

pg::Params params(const config::Filter &filter) {
    pg::Params out;
    for (const auto &p : filter.params)
        out.push_back(p);
    return out;
}

std::string for_copy(pg::Connection &src, const std::string &relation,
                     const config::Filter &filter) {
    for (const auto &p : placeholders(filter.where))
        if (p.number < 1 || p.number > static_cast<int>(filter.params.size()))
            throw ConfigError(fmt::format("filter \"{}\" uses ${} but has {} param(s)",
                                          filter.where, p.number, filter.params.size()));
    // The server infers each parameter's type from the predicate, as it would for a
    // bound query.
    std::string probe = fmt::format("SELECT 1 FROM ONLY {} WHERE ({})", relation, filter.where);
    pg::Result prepared(
        PQprepare(src.get(), "", probe.c_str(), static_cast<int>(filter.params.size()), nullptr));
    if (!prepared.get() || PQresultStatus(prepared.get()) != PGRES_COMMAND_OK)
        src.throw_result_error(prepared.get(), probe);
    pg::Result described(PQdescribePrepared(src.get(), ""));
    if (!described.get() || PQresultStatus(described.get()) != PGRES_COMMAND_OK)
        src.throw_result_error(described.get(), probe);

    std::vector<std::string> types;
    for (int i = 0; i < PQnparams(described.get()); ++i) {
        auto oid = std::to_string(PQparamtype(described.get(), i));
        types.push_back(
            std::string(src.exec("SELECT pg_catalog.format_type($1::pg_catalog.oid, NULL)", {oid},
                                 pg::Expect::value)
                            .text(0, 0)));
        src.exec("SELECT pg_catalog.set_config($1, $2, true)",
                 {fmt::format("pgincr.p{}", i + 1), filter.params[static_cast<std::size_t>(i)]},
                 pg::Expect::value);
    }
    return rewrite(filter.where, [&](int n) {
        return fmt::format("(SELECT pg_catalog.current_setting('pgincr.p{}')::{})", n,
                           types[static_cast<std::size_t>(n - 1)]);
    });
}

} // namespace pgincr::filter
