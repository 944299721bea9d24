#include "support/http_receiver.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pgincr::test {

namespace {

// How long one connection may take to deliver its request before it is dropped, so
// that a client that connects and stays silent cannot wedge the receiver.
constexpr int read_timeout_ms = 5000;

[[noreturn]] void fail(const char *what) {
    throw std::runtime_error(std::string("http_receiver: ") + what + ": " + std::strerror(errno));
}

const char *reason(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

std::string trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos)
        return "";
    const auto last = s.find_last_not_of(" \t");
    return std::string(s.substr(first, last - first + 1));
}

// Waits until `fd` is readable or the wake pipe fires. False on wake-up or timeout.
bool wait_readable(int fd, int wake_fd, int timeout_ms) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    for (;;) {
        int n = ::poll(fds, 2, timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || (fds[1].revents & POLLIN))
            return false;
        return true;
    }
}

void send_all(int fd, const std::string &data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; // the client went away; nothing to do about it
        sent += static_cast<std::size_t>(n);
    }
}

} // namespace

std::optional<std::string> HttpRequest::header(std::string_view name) const {
    for (const auto &[k, v] : headers)
        if (k.size() == name.size() && ::strncasecmp(k.data(), name.data(), k.size()) == 0)
            return v;
    return std::nullopt;
}

HttpReceiver::HttpReceiver(std::vector<int> statuses,
                           std::vector<std::pair<std::string, std::string>> extra_headers)
    : statuses_(std::move(statuses)), extra_headers_(std::move(extra_headers)) {
    if (statuses_.empty())
        statuses_.push_back(200);
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0)
        fail("socket");
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0; // an ephemeral port, read back below
    socklen_t len = sizeof addr;
    int pipe_fds[2];
    if (::bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0 ||
        ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        int saved = errno;
        ::close(listen_fd_);
        errno = saved;
        fail("bind/listen");
    }
    port_ = ntohs(addr.sin_port);
    wake_read_ = pipe_fds[0];
    wake_write_ = pipe_fds[1];
    thread_ = std::thread([this] { serve(); });
}

HttpReceiver::~HttpReceiver() {
    const char byte = 'x';
    while (::write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
    for (int fd : held_fds_)
        ::close(fd);
    ::close(listen_fd_);
    ::close(wake_read_);
    ::close(wake_write_);
}

std::string HttpReceiver::url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/hook";
}

std::vector<HttpRequest> HttpReceiver::requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
}

std::size_t HttpReceiver::request_count() const {
    std::lock_guard lock(mutex_);
    return requests_.size();
}

int HttpReceiver::next_status() {
    int status = statuses_[std::min(served_, statuses_.size() - 1)];
    ++served_;
    return status;
}

void HttpReceiver::serve() {
    for (;;) {
        if (!wait_readable(listen_fd_, wake_read_, -1))
            return;
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        handle(fd);
    }
}

// Reads one request, records it, then answers and closes, or holds the connection
// open until the destructor when the script says hang.
void HttpReceiver::handle(int fd) {
    std::string data;
    std::size_t header_end = std::string::npos;
    std::size_t body_length = 0;
    HttpRequest req;
    char buf[4096];
    for (;;) {
        if (header_end != std::string::npos && data.size() >= header_end + 4 + body_length)
            break;
        if (!wait_readable(fd, wake_read_, read_timeout_ms)) {
            ::close(fd);
            return;
        }
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ::close(fd);
            return;
        }
        data.append(buf, static_cast<std::size_t>(n));
        if (header_end == std::string::npos) {
            header_end = data.find("\r\n\r\n");
            if (header_end == std::string::npos)
                continue;
            std::string_view head(data.data(), header_end);
            std::size_t line_end = head.find("\r\n");
            std::string_view request_line = head.substr(0, line_end);
            std::size_t sp1 = request_line.find(' ');
            std::size_t sp2 = request_line.rfind(' ');
            req.method = std::string(request_line.substr(0, sp1));
            req.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
            req.version = std::string(request_line.substr(sp2 + 1));
            while (line_end != std::string_view::npos) {
                std::size_t start = line_end + 2;
                line_end = head.find("\r\n", start);
                std::string_view line = head.substr(start, line_end - start);
                std::size_t colon = line.find(':');
                if (colon == std::string_view::npos)
                    continue;
                req.headers.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
            }
            if (auto cl = req.header("Content-Length"))
                std::from_chars(cl->data(), cl->data() + cl->size(), body_length);
        }
    }
    req.body = data.substr(header_end + 4, body_length);
    {
        std::lock_guard lock(mutex_);
        requests_.push_back(req);
    }

    const int status = next_status();
    if (status == hang) {
        held_fds_.push_back(fd);
        return;
    }
    const std::string body = std::to_string(status) + " " + reason(status) + "\n";
    std::string response = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
    response += "Content-Type: text/plain\r\n";
    response += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    for (const auto &[k, v] : extra_headers_)
        response += k + ": " + v + "\r\n";
    response += "Connection: close\r\n\r\n" + body;
    send_all(fd, response);
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
}

} // namespace pgincr::test
