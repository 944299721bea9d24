#pragma once
// A real HTTP/1.1 server on 127.0.0.1 for the webhook tests: it answers each request
// with a scripted status (or never answers) and records what it received. One request
// per connection, Content-Length bodies only, "Connection: close" on every response.
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace pgincr::test {

struct HttpRequest {
    std::string method;
    std::string target; // path and query as sent, e.g. "/hook?token=x"
    std::string version;
    std::vector<std::pair<std::string, std::string>> headers; // in order, as sent
    std::string body;

    // The first header with this name, compared case-insensitively.
    std::optional<std::string> header(std::string_view name) const;
    std::string path() const { return target.substr(0, target.find('?')); }
};

class HttpReceiver {
  public:
    // In a status script: accept the connection, read the request, never answer.
    static constexpr int hang = 0;

    // Answers the n-th request with statuses[n]; the last entry repeats. `extra_headers`
    // go into every response (e.g. Location, Retry-After).
    explicit HttpReceiver(std::vector<int> statuses = {200},
                          std::vector<std::pair<std::string, std::string>> extra_headers = {});
    ~HttpReceiver(); // stops the thread, even while it holds a hanging connection
    HttpReceiver(const HttpReceiver &) = delete;
    HttpReceiver &operator=(const HttpReceiver &) = delete;

    int port() const { return port_; }
    std::string url() const; // "http://127.0.0.1:PORT/hook"

    // Everything received so far. A request is recorded before it is answered, so
    // after a client call returns, its requests are here.
    std::vector<HttpRequest> requests() const;
    std::size_t request_count() const;

  private:
    void serve();
    void handle(int fd);
    int next_status();

    std::vector<int> statuses_;
    std::vector<std::pair<std::string, std::string>> extra_headers_;
    int listen_fd_ = -1;
    int wake_read_ = -1; // a pipe: the destructor writes, the thread wakes up and exits
    int wake_write_ = -1;
    int port_ = 0;
    std::size_t served_ = 0;    // thread-only
    std::vector<int> held_fds_; // hanging connections, thread-only
    mutable std::mutex mutex_;
    std::vector<HttpRequest> requests_;
    std::thread thread_;
};

} // namespace pgincr::test
