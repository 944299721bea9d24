#include "support/pipeline.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

namespace pgincr::test {

Pipeline::Pipeline(const std::string &name, const std::string &source_schema_,
                   const std::string &dest_schema_, const std::string &extra_env)
    : dbs(name), source_schema(source_schema_), dest_schema(dest_schema_) {
    if (source_schema != "public")
        dbs.src().exec(fmt::format("CREATE SCHEMA {}", dbs.src().quote_ident(source_schema)));
    dir.write_env(dbs, source_schema, dest_schema, extra_env);
}

std::string Pipeline::src_rel(const std::string &table) {
    return src().qualified(source_schema, table);
}

std::string Pipeline::dst_rel(const std::string &table) {
    return dst().qualified(dest_schema, table);
}

bool Pipeline::equal(const std::string &table, const std::string &dest_table) {
    auto a = digest(src(), src_rel(table));
    auto b = digest(dst(), dst_rel(dest_table.empty() ? table : dest_table));
    INFO("source rows ", a.rows, " md5 ", a.md5, "; destination rows ", b.rows, " md5 ", b.md5);
    CHECK(a.rows == b.rows);
    return a == b;
}

std::optional<state::TableState> Pipeline::state(const std::string &dest_table) const {
    return state::Store(dir.path() / "sync-state").load(dest_table);
}

long long Pipeline::dst_count(const std::string &dest_table) {
    return std::stoll(scalar(dst(), "SELECT count(*) FROM " + dst_rel(dest_table)));
}

} // namespace pgincr::test
