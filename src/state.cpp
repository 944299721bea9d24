#include "state.hpp"

#include "util/error.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

namespace pgincr::state {

using json = nlohmann::ordered_json;

namespace {

std::string encode_name(const std::string &name) {
    std::string out;
    for (unsigned char c : name) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-')
            out += static_cast<char>(c);
        else
            out += fmt::format("%{:02X}", c);
    }
    return out;
}

void fsync_path(const std::filesystem::path &path, int flags) {
    int fd = ::open(path.c_str(), flags);
    if (fd < 0)
        return;
    ::fsync(fd);
    ::close(fd);
}

} // namespace

Store::Store(std::filesystem::path dir) : dir_(std::move(dir)) {}

std::filesystem::path Store::path_for(const std::string &destination) const {
    return dir_ / (encode_name(destination) + ".json");
}

std::filesystem::path Store::sibling_path(const std::string &destination,
                                          const std::string &suffix) const {
    return dir_ / (encode_name(destination) + "." + suffix + ".json");
}

std::filesystem::path Store::legacy_path(const std::string &table) const {
    return dir_ / (table + ".txt");
}

std::optional<TableState> Store::load(const std::string &destination) const {
    auto path = path_for(destination);
    auto text = read_file(path);
    if (!text)
        return std::nullopt;
    return from_json(*text, path.string());
}

void Store::save(const TableState &state) const {
    std::filesystem::create_directories(dir_);
    write_file_atomically(path_for(state.destination), to_json(state));
}

std::optional<std::string> Store::legacy_mark(const std::string &table) const {
    std::ifstream in(legacy_path(table));
    if (!in)
        return std::nullopt;
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\n'))
        line.pop_back();
    if (line.empty())
        return std::nullopt;
    return line;
}

std::optional<std::string> read_file(const std::filesystem::path &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::ostringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

void write_file_atomically(const std::filesystem::path &path, const std::string &content) {
    auto tmp = path;
    tmp += fmt::format(".tmp.{}", ::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        throw Error(fmt::format("{}: cannot write: {}", tmp.string(), std::strerror(errno)));
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw Error(fmt::format("{}: cannot write: {}", tmp.string(), std::strerror(err)));
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw Error(fmt::format("{}: cannot sync: {}", tmp.string(), std::strerror(err)));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw Error(
            fmt::format("{}: cannot rename into place: {}", path.string(), std::strerror(err)));
    }
    fsync_path(path.parent_path().empty() ? "." : path.parent_path(), O_RDONLY | O_DIRECTORY);
}

std::string to_json(const TableState &s) {
    json j;
    j["source_table"] = s.source_table;
    j["destination"] = s.destination;
    j["replication_key"] = s.replication_key;
    j["key_type"] = s.key_type;
    j["watermark"] = s.watermark ? json(*s.watermark) : json(nullptr);
    j["fingerprint"] = s.fingerprint;
    j["dest_signature"] = s.dest_signature;
    j["options"] = s.options;
    j["reset_requested"] = s.reset_requested;
    if (s.deletes_checked_at)
        j["deletes_checked_at"] = *s.deletes_checked_at;
    if (s.lsn)
        j["lsn"] = *s.lsn;
    if (s.last_sync) {
        const auto &l = *s.last_sync;
        json last;
        last["at"] = l.at;
        last["mode"] = l.mode;
        last["result"] = l.result;
        last["rows_copied"] = l.rows_copied;
        last["rows_merged"] = l.rows_merged;
        last["duration_ms"] = l.duration_ms;
        last["lag_seconds"] = l.lag_seconds ? json(*l.lag_seconds) : json(nullptr);
        last["rows_deleted"] = l.rows_deleted;
        last["conflicts"] = l.conflicts;
        last["error"] = l.error.empty() ? json(nullptr) : json(l.error);
        j["last_sync"] = last;
    }
    return j.dump(2) + "\n";
}

TableState from_json(const std::string &text, const std::string &origin) {
    try {
        auto j = json::parse(text);
        TableState s;
        s.source_table = j.at("source_table").get<std::string>();
        s.destination = j.at("destination").get<std::string>();
        s.replication_key = j.value("replication_key", "");
        s.key_type = j.value("key_type", "");
        if (j.contains("watermark") && j["watermark"].is_string())
            s.watermark = j["watermark"].get<std::string>();
        s.fingerprint = j.value("fingerprint", "");
        s.dest_signature = j.value("dest_signature", "");
        s.options = j.value("options", "");
        s.reset_requested = j.value("reset_requested", false);
        if (j.contains("deletes_checked_at") && j["deletes_checked_at"].is_string())
            s.deletes_checked_at = j["deletes_checked_at"].get<std::string>();
        if (j.contains("lsn") && j["lsn"].is_string())
            s.lsn = j["lsn"].get<std::string>();
        if (j.contains("last_sync") && j["last_sync"].is_object()) {
            const auto &l = j["last_sync"];
            LastSync last;
            last.at = l.value("at", "");
            last.mode = l.value("mode", "");
            last.result = l.value("result", "");
            last.rows_copied = l.value("rows_copied", std::int64_t{0});
            last.rows_merged = l.value("rows_merged", std::int64_t{0});
            last.duration_ms = l.value("duration_ms", std::int64_t{0});
            last.rows_deleted = l.value("rows_deleted", std::int64_t{0});
            last.conflicts = l.value("conflicts", std::int64_t{0});
            if (l.contains("lag_seconds") && l["lag_seconds"].is_number())
                last.lag_seconds = l["lag_seconds"].get<double>();
            if (l.contains("error") && l["error"].is_string())
                last.error = l["error"].get<std::string>();
            s.last_sync = last;
        }
        return s;
    } catch (const nlohmann::json::exception &e) {
        throw ConfigError(fmt::format("{}: unreadable sync state ({}); delete the file to reload "
                                      "the table whole",
                                      origin, e.what()));
    }
}

} // namespace pgincr::state
