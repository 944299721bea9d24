#include "source/dump.hpp"

#include "util/error.hpp"
#include "util/signals.hpp"

#include <algorithm>
#include <boost/process.hpp>
#include <csignal>
#include <cstring>
#include <deque>
#include <fmt/format.h>
#include <mutex>
#include <sys/wait.h>
#include <thread>

namespace bp = boost::process;

namespace pgincr::dump {

std::string program() {
    if (const char *p = std::getenv("PGINCR_PG_DUMP"); p && *p)
        return p;
    auto found = bp::search_path("pg_dump");
    if (found.empty())
        throw ChildProcessError("pg_dump not found in PATH (install postgresql-client, or set "
                                "PGINCR_PG_DUMP)");
    return found.string();
}

std::string exact_pattern(const std::string &schema, const std::string &table) {
    // Inside double quotes pg_dump takes every character literally (no wildcards,
    // no case folding); a double quote is written twice.
    auto quote = [](const std::string &s) {
        std::string out = "\"";
        for (char c : s)
            out += c == '"' ? std::string("\"\"") : std::string(1, c);
        return out + "\"";
    };
    return quote(schema) + "." + quote(table);
}

std::vector<std::string> arguments(const Request &r) {
    return {"--data-only",
            "--no-password",
            "--strict-names",
            "--format=plain",
            "--encoding=UTF8",
            "--snapshot=" + r.snapshot,
            "--table=" + exact_pattern(r.schema, r.table)};
}

std::map<std::string, std::string> environment(const Request &r,
                                               const std::map<std::string, std::string> &parent) {
    auto env = parent;
    auto set = [&](const char *key, const std::string &value) {
        if (!value.empty())
            env[key] = value;
    };
    set("PGHOST", r.source.host);
    set("PGPORT", r.source.port);
    set("PGUSER", r.source.user);
    set("PGDATABASE", r.source.dbname);
    set("PGPASSWORD", r.source.password);
    // The source side's own TLS settings; unset ones keep the parent's PGSSLMODE ...
    set("PGSSLMODE", r.source.sslmode);
    set("PGSSLROOTCERT", r.source.sslrootcert);
    set("PGSSLCERT", r.source.sslcert);
    set("PGSSLKEY", r.source.sslkey);
    env["PGAPPNAME"] = "pgincr";
    // PGOPTIONS of the parent could turn the snapshot session into something else.
    env.erase("PGOPTIONS");
    return env;
}

void CopySectionParser::feed(const char *data, std::size_t size) {
    std::size_t i = 0;
    while (state_ == State::preamble && i < size) {
        const char *nl = static_cast<const char *>(std::memchr(data + i, '\n', size - i));
        std::size_t end = nl ? static_cast<std::size_t>(nl - data) : size;
        line_.append(data + i, end - i);
        i = end;
        if (!nl)
            return;
        ++i; // the newline
        if (line_.rfind("COPY ", 0) == 0 && line_.size() > 12 &&
            line_.compare(line_.size() - 12, 12, " FROM stdin;") == 0) {
            state_ = State::data;
            at_line_start_ = true;
        }
        line_.clear();
    }
    if (state_ != State::data || i >= size)
        return;

    // The section ends at a line holding only "\." ; data lines never do, because
    // COPY text escapes every backslash.
    std::string_view chunk(data + i, size - i);
    std::string joined;
    if (!pending_.empty()) {
        joined = pending_ + std::string(chunk);
        chunk = joined;
        pending_.clear();
    }
    static constexpr std::string_view end_marker = "\\.\n";
    if (at_line_start_ && chunk.size() >= 3 && chunk.substr(0, 3) == end_marker) {
        state_ = State::done;
        return;
    }
    auto pos = chunk.find("\n\\.\n");
    if (pos != std::string_view::npos) {
        sink_(chunk.data(), pos + 1);
        state_ = State::done;
        return;
    }
    // Keep the last bytes back: they may be the start of the terminator.
    if (chunk.size() <= 3) {
        pending_ = std::string(chunk);
        return;
    }
    std::size_t send = chunk.size() - 3;
    sink_(chunk.data(), send);
    at_line_start_ = chunk[send - 1] == '\n';
    pending_ = std::string(chunk.substr(send));
}

std::int64_t stream_table(const Request &request, pg::CopyIn &sink,
                          const pg::CopyProgress &progress) {
    std::string exe = program();
    auto args = arguments(request);

    std::map<std::string, std::string> parent;
    for (const auto &entry : boost::this_process::environment())
        parent[entry.get_name()] = entry.to_string();
    bp::environment env;
    for (const auto &[k, v] : environment(request, parent))
        env[k] = v;

    bp::pipe out_pipe;
    bp::ipstream err_stream;
    bp::child child(bp::exe = exe, bp::args = args, bp::std_out > out_pipe,
                    bp::std_err > err_stream, bp::std_in < bp::null, env);
    signals::set_child(child.id());

    // stderr is read concurrently so that a chatty child can never block on a full pipe.
    std::deque<std::string> err_tail;
    std::mutex err_mutex;
    std::thread err_reader([&] {
        std::string line;
        while (std::getline(err_stream, line)) {
            std::lock_guard lock(err_mutex);
            err_tail.push_back(line);
            if (err_tail.size() > 20)
                err_tail.pop_front();
        }
    });

    std::int64_t bytes = 0;
    std::int64_t rows = 0;
    CopySectionParser parser([&](const char *d, std::size_t n) {
        sink.put(d, n);
        bytes += static_cast<std::int64_t>(n);
        if (progress) {
            rows += std::count(d, d + n, '\n'); // COPY text: one line per row
            progress(rows, bytes);
        }
    });

    auto stop_child = [&] {
        signals::set_child(0);
        std::error_code ec;
        if (child.running(ec))
            child.terminate(ec);
        out_pipe.close();
        if (err_reader.joinable())
            err_reader.join();
    };

    try {
        std::vector<char> buf(1 << 16);
        for (;;) {
            int n = out_pipe.read(buf.data(), static_cast<int>(buf.size()));
            if (n <= 0)
                break;
            if (!parser.finished())
                parser.feed(buf.data(), static_cast<std::size_t>(n));
        }
    } catch (...) {
        stop_child();
        throw;
    }
    out_pipe.close();
    child.wait();
    signals::set_child(0);
    err_reader.join();

    int status = child.native_exit_code();
    std::string tail;
    for (const auto &l : err_tail)
        tail += (tail.empty() ? "" : " | ") + l;
    if (WIFSIGNALED(status))
        throw ChildProcessError(fmt::format("pg_dump was killed by signal {} ({}){}",
                                            WTERMSIG(status), strsignal(WTERMSIG(status)),
                                            tail.empty() ? "" : ": " + tail));
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code != 0)
        throw ChildProcessError(fmt::format("pg_dump exited with status {}: {}", code,
                                            tail.empty() ? "(no output on stderr)" : tail));
    if (!parser.finished())
        throw ChildProcessError(fmt::format(
            "pg_dump exited 0 but its output had no complete data section for {}{}",
            exact_pattern(request.schema, request.table), tail.empty() ? "" : ": " + tail));
    return bytes;
}

} // namespace pgincr::dump
