// cdc/pgoutput byte by byte, and WAL positions: what the decoder makes of each message
// type, and that a short or malformed message is refused with its type and offset.
#include "cdc/pgoutput.hpp"
#include "pg/replication.hpp"

#include <doctest/doctest.h>

using namespace pgincr;

namespace {

// Builds messages the way the server's logical/proto.c writes them.
struct Bytes {
    std::string s;
    Bytes &c(char v) {
        s += v;
        return *this;
    }
    template <typename T> Bytes &i(T v) {
        for (int shift = (sizeof(T) - 1) * 8; shift >= 0; shift -= 8)
            s += static_cast<char>((static_cast<std::uint64_t>(v) >> shift) & 0xff);
        return *this;
    }
    Bytes &str(const std::string &v) {
        s += v;
        s += '\0';
        return *this;
    }
    Bytes &text(const std::string &v) {
        c('t').i<std::int32_t>(static_cast<std::int32_t>(v.size()));
        s += v;
        return *this;
    }
};

} // namespace

TEST_CASE("pgoutput: begin - commit - relation - and the tuple kinds decode") {
    auto begin = cdc::decode(
        Bytes{}.c('B').i<std::uint64_t>(0x16B374D848).i<std::int64_t>(7).i<std::uint32_t>(42).s);
    CHECK(std::get<cdc::Begin>(begin).final_lsn == 0x16B374D848);
    CHECK(std::get<cdc::Begin>(begin).xid == 42);

    auto commit = cdc::decode(
        Bytes{}.c('C').c(0).i<std::uint64_t>(10).i<std::uint64_t>(20).i<std::int64_t>(30).s);
    CHECK(std::get<cdc::Commit>(commit).end_lsn == 20);

    auto rel = cdc::decode(Bytes{}
                               .c('R')
                               .i<std::uint32_t>(16384)
                               .str("app")
                               .str("Order Items")
                               .c('d')
                               .i<std::int16_t>(2)
                               .c(1)
                               .str("id")
                               .i<std::uint32_t>(20)
                               .i<std::int32_t>(-1)
                               .c(0)
                               .str("note")
                               .i<std::uint32_t>(25)
                               .i<std::int32_t>(-1)
                               .s);
    const auto &r = std::get<cdc::Relation>(rel);
    CHECK(r.name == "Order Items");
    REQUIRE(r.columns.size() == 2);
    CHECK(r.columns[0].key);
    CHECK_FALSE(r.columns[1].key);
    CHECK(r.columns[1].type == 25);

    auto upd = cdc::decode(Bytes{}
                               .c('U')
                               .i<std::uint32_t>(16384)
                               .c('K')
                               .i<std::int16_t>(2)
                               .text("7")
                               .c('n')
                               .c('N')
                               .i<std::int16_t>(3)
                               .text("8")
                               .c('u')
                               .c('n')
                               .s);
    const auto &u = std::get<cdc::Update>(upd);
    CHECK(u.old_kind == 'K');
    REQUIRE(u.old);
    CHECK((*u.old)[0].text == "7");
    CHECK(u.row[0].text == "8");
    CHECK(u.row[1].kind == cdc::Value::Kind::unchanged);
    CHECK(u.row[2].kind == cdc::Value::Kind::null);

    // A value may hold any byte, NUL included.
    auto ins = cdc::decode(Bytes{}
                               .c('I')
                               .i<std::uint32_t>(1)
                               .c('N')
                               .i<std::int16_t>(1)
                               .text(std::string("a\0b", 3))
                               .s);
    CHECK(std::get<cdc::Insert>(ins).row[0].text == std::string("a\0b", 3));

    auto trunc = cdc::decode(
        Bytes{}.c('T').i<std::uint32_t>(2).c(3).i<std::uint32_t>(5).i<std::uint32_t>(6).s);
    const auto &t = std::get<cdc::Truncate>(trunc);
    CHECK(t.cascade);
    CHECK(t.restart_identity);
    CHECK(t.relations == std::vector<std::uint32_t>{5, 6});
}

TEST_CASE("pgoutput: a short - unknown or malformed message names its type and offset") {
    auto error = [](const std::string &bytes) {
        try {
            cdc::decode(bytes);
        } catch (const cdc::DecodeError &e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error(Bytes{}.c('B').i<std::uint32_t>(1).s) ==
          "pgoutput message 'B': the message ends early at byte 1 of 5");
    CHECK(error("Z") == "pgoutput message 'Z': unknown message type at byte 1 of 1");
    CHECK(error(Bytes{}.c('I').i<std::uint32_t>(1).c('X').s).find("expected 'N'") !=
          std::string::npos);
    CHECK(error(Bytes{}.c('I').i<std::uint32_t>(1).c('N').i<std::int16_t>(1).c('b').s)
              .find("value kind 'b'") != std::string::npos);
    CHECK(error(Bytes{}.c('O').i<std::uint64_t>(1).str("x").c('!').s).find("1 trailing byte(s)") !=
          std::string::npos);
    CHECK(error("").find("empty") != std::string::npos);
}

TEST_CASE("lsn: parsed and printed as PostgreSQL does - bad input refused") {
    CHECK(pg::Lsn::parse("16/B374D848").value == 0x16B374D848ULL);
    CHECK(pg::Lsn::parse("0/0").value == 0);
    CHECK(pg::Lsn{0x16B374D848ULL}.str() == "16/B374D848");
    CHECK(pg::Lsn::parse("FFFFFFFF/FFFFFFFF").str() == "FFFFFFFF/FFFFFFFF");
    CHECK(pg::Lsn::parse("1/0") > pg::Lsn::parse("0/FFFFFFFF"));
    for (const char *bad : {"", "/", "1/", "/1", "12", "G/0", "123456789/0"})
        CHECK_THROWS_AS(pg::Lsn::parse(bad), Error);
    CHECK_THROWS_AS(pg::check_slot_name("Bad-Name"), ConfigError);
    CHECK_NOTHROW(pg::check_slot_name("pgincr_shop_1"));
}
