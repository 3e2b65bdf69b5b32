// metrics_http — the smallest HTTP endpoint a Prometheus server can scrape, on the reactor:
// GET /metrics answers 200 with the text `render()` returns; any other request answers 404, a
// malformed or oversized one 400.  One request per connection (Connection: close).
//
// It listens on 127.0.0.1 only: metrics are for the operator's scraper, not the internet.  A
// client gets `kDeadline` to send its request and read the answer, and at most `kMaxClients`
// are served at once (more are closed at accept), so a stuck scraper cannot pile up descriptors.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <unordered_map>

#include "evwheel/reactor.hpp"

namespace examples {

class MetricsHttp final : public evwheel::IoHandler {
 public:
  static constexpr std::size_t kMaxRequest = 8192;
  static constexpr std::size_t kMaxClients = 16;
  static constexpr std::chrono::seconds kDeadline{5};

  // Listens on 127.0.0.1:port (0 picks a free port, see port()); throws std::system_error.
  MetricsHttp(evwheel::Reactor& reactor, uint16_t port, std::function<std::string()> render)
      : reactor_(reactor), render_(std::move(render)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "metrics: socket");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    socklen_t length = sizeof address;
    int one = 1;
    if (::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 || ::listen(fd_, 64) < 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) < 0) {
      int error = errno;
      ::close(fd_);
      throw std::system_error(error, std::generic_category(), "metrics: 127.0.0.1:" + std::to_string(port));
    }
    port_ = ntohs(address.sin_port);
    reactor_.add(fd_, EPOLLIN, *this);
  }
  ~MetricsHttp() {
    clients_.clear();
    reactor_.remove(fd_);
    ::close(fd_);
  }
  MetricsHttp(const MetricsHttp&) = delete;
  MetricsHttp& operator=(const MetricsHttp&) = delete;

  uint16_t port() const noexcept { return port_; }

 private:
  class Client final : public evwheel::IoHandler {
   public:
    Client(MetricsHttp& server, int fd) : server_(server), fd_(fd) {
      server_.reactor_.add(fd_, EPOLLIN, *this);
      try {
        deadline_ = server_.reactor_.run_after(kDeadline, [this] {
          deadline_ = 0;
          server_.finish(fd_);
        });
      } catch (...) {
        server_.reactor_.remove(fd_);  // a half-made client leaves nothing behind
        throw;
      }
    }
    ~Client() {
      if (deadline_) server_.reactor_.cancel(deadline_);
      server_.reactor_.remove(fd_);
      ::close(fd_);
    }
    // Every path ends in finish() (which destroys this client) as its last step, or waits.
    void on_io(uint32_t) override {
      if (out_.empty() && !read_request()) return server_.finish(fd_);
      if (!out_.empty()) write_response();
    }

   private:
    // Reads what has arrived; false when the client went away before asking.
    bool read_request() {
      char chunk[2048];
      ssize_t got;
      while ((got = ::recv(fd_, chunk, sizeof chunk, 0)) > 0) in_.append(chunk, static_cast<std::size_t>(got));
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return false;
      if (in_.find("\r\n\r\n") != std::string::npos || in_.find("\n\n") != std::string::npos) {
        out_ = server_.respond(in_);
      } else if (in_.size() > kMaxRequest) {
        out_ = response("400 Bad Request", "request too large\n");
      }
      return true;
    }
    void write_response() {
      while (sent_ < out_.size()) {
        ssize_t put = ::send(fd_, out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL);
        if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          server_.reactor_.modify(fd_, EPOLLOUT);  // the rest when the socket has room
          return;
        }
        if (put <= 0) break;
        sent_ += static_cast<std::size_t>(put);
      }
      server_.finish(fd_);
    }

    MetricsHttp& server_;
    int fd_;
    evwheel::TimerId deadline_ = 0;
    std::string in_, out_;
    std::size_t sent_ = 0;
  };

  static std::string response(const char* status, const std::string& body,
                              const char* type = "text/plain; charset=utf-8") {
    return std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }

  std::string respond(const std::string& request) const {
    std::string line = request.substr(0, request.find_first_of("\r\n"));
    std::size_t method_end = line.find(' ');
    std::size_t target_end = line.find(' ', method_end + 1);
    if (method_end == std::string::npos || target_end == std::string::npos || line.compare(target_end + 1, 5, "HTTP/") != 0)
      return response("400 Bad Request", "malformed request line\n");
    std::string method = line.substr(0, method_end);
    std::string target = line.substr(method_end + 1, target_end - method_end - 1);
    if (method == "GET" && target == "/metrics")
      return response("200 OK", render_(), "text/plain; version=0.0.4; charset=utf-8");
    return response("404 Not Found", "only GET /metrics is served here\n");
  }

  void on_io(uint32_t) override {
    for (;;) {
      int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or an error the next readiness event will retry
      if (clients_.size() >= kMaxClients) {
        ::close(fd);
        continue;
      }
      try {
        clients_[fd] = std::make_unique<Client>(*this, fd);
      } catch (const std::exception&) {
        clients_.erase(fd);
        ::close(fd);
      }
    }
  }

  // Destroys the client of `fd`; called last in whatever the client was doing.
  void finish(int fd) { clients_.erase(fd); }

  evwheel::Reactor& reactor_;
  std::function<std::string()> render_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::unordered_map<int, std::unique_ptr<Client>> clients_;
};

}  // namespace examples
