#include "cdc/pgoutput.hpp"

#include <fmt/format.h>

namespace pgincr::cdc {

namespace {

// Reads the protocol's network-order integers and NUL-terminated strings, and refuses
// to run past the end.
class Reader {
  public:
    Reader(std::string_view bytes, char tag) : bytes_(bytes), tag_(tag) {}

    template <typename T> T integer() {
        need(sizeof(T));
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i)
            v = (v << 8) | static_cast<unsigned char>(bytes_[at_ + i]);
        at_ += sizeof(T);
        return static_cast<T>(v);
    }
    char byte() { return static_cast<char>(integer<std::uint8_t>()); }
    std::string string() {
        auto end = bytes_.find('\0', at_);
        if (end == std::string_view::npos)
            fail("an unterminated string");
        std::string s(bytes_.substr(at_, end - at_));
        at_ = end + 1;
        return s;
    }
    std::string bytes(std::size_t n) {
        need(n);
        std::string s(bytes_.substr(at_, n));
        at_ += n;
        return s;
    }
    Tuple tuple() {
        auto n = integer<std::int16_t>();
        if (n < 0)
            fail("a negative column count");
        Tuple t;
        t.reserve(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) {
            Value v;
            switch (char kind = byte()) {
            case 'n':
                v.kind = Value::Kind::null;
                break;
            case 'u':
                v.kind = Value::Kind::unchanged;
                break;
            case 't': {
                auto len = integer<std::int32_t>();
                if (len < 0)
                    fail("a negative value length");
                v.kind = Value::Kind::text;
                v.text = bytes(static_cast<std::size_t>(len));
                break;
            }
            default:
                fail(fmt::format("value kind '{}' (binary values are not requested)", kind));
            }
            t.push_back(std::move(v));
        }
        return t;
    }
    void done() const {
        if (at_ != bytes_.size())
            fail(fmt::format("{} trailing byte(s)", bytes_.size() - at_));
    }
    [[noreturn]] void fail(const std::string &what) const {
        throw DecodeError(fmt::format("pgoutput message '{}': {} at byte {} of {}", tag_, what, at_,
                                      bytes_.size()));
    }

  private:
    void need(std::size_t n) const {
        if (bytes_.size() - at_ < n)
            fail("the message ends early");
    }
    std::string_view bytes_;
    char tag_;
    std::size_t at_ = 1;
};

} // namespace

Message decode(std::string_view bytes) {
    if (bytes.empty())
        throw DecodeError("pgoutput message: empty");
    char tag = bytes[0];
    Reader r(bytes, tag);
    Message out;
    switch (tag) {
    case 'B': {
        Begin m;
        m.final_lsn = r.integer<std::uint64_t>();
        m.commit_time = r.integer<std::int64_t>();
        m.xid = r.integer<std::uint32_t>();
        out = m;
        break;
    }
    case 'C': {
        Commit m;
        m.flags = r.integer<std::uint8_t>();
        m.commit_lsn = r.integer<std::uint64_t>();
        m.end_lsn = r.integer<std::uint64_t>();
        m.commit_time = r.integer<std::int64_t>();
        out = m;
        break;
    }
    case 'O': {
        Origin m;
        m.lsn = r.integer<std::uint64_t>();
        m.name = r.string();
        out = m;
        break;
    }
    case 'R': {
        Relation m;
        m.id = r.integer<std::uint32_t>();
        m.schema = r.string();
        m.name = r.string();
        m.replica_identity = r.byte();
        auto n = r.integer<std::int16_t>();
        for (int i = 0; i < n; ++i) {
            Column c;
            c.key = (r.integer<std::uint8_t>() & 1) != 0;
            c.name = r.string();
            c.type = r.integer<std::uint32_t>();
            c.typmod = r.integer<std::int32_t>();
            m.columns.push_back(std::move(c));
        }
        out = m;
        break;
    }
    case 'Y': {
        Type m;
        m.id = r.integer<std::uint32_t>();
        m.schema = r.string();
        m.name = r.string();
        out = m;
        break;
    }
    case 'I': {
        Insert m;
        m.relation = r.integer<std::uint32_t>();
        if (r.byte() != 'N')
            r.fail("expected 'N' before the new row");
        m.row = r.tuple();
        out = m;
        break;
    }
    case 'U': {
        Update m;
        m.relation = r.integer<std::uint32_t>();
        char k = r.byte();
        if (k == 'K' || k == 'O') {
            m.old_kind = k;
            m.old = r.tuple();
            k = r.byte();
        }
        if (k != 'N')
            r.fail("expected 'N' before the new row");
        m.row = r.tuple();
        out = m;
        break;
    }
    case 'D': {
        Delete m;
        m.relation = r.integer<std::uint32_t>();
        m.old_kind = r.byte();
        if (m.old_kind != 'K' && m.old_kind != 'O')
            r.fail("expected 'K' or 'O' before the old row");
        m.old = r.tuple();
        out = m;
        break;
    }
    case 'T': {
        Truncate m;
        auto n = r.integer<std::uint32_t>();
        auto options = r.integer<std::uint8_t>();
        m.cascade = (options & 1) != 0;
        m.restart_identity = (options & 2) != 0;
        for (std::uint32_t i = 0; i < n; ++i)
            m.relations.push_back(r.integer<std::uint32_t>());
        out = m;
        break;
    }
    case 'M':
        // pg_logical_emit_message: read past it, nothing to apply.
        return Other{tag};
    default:
        r.fail("unknown message type");
    }
    r.done();
    return out;
}

} // namespace pgincr::cdc
