// listener — see include/evwheel/listener.hpp.
#include "evwheel/listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "evwheel/log.hpp"
#include "socket_file.hpp"

namespace evwheel {

namespace {
int open_reserve() noexcept { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
}  // namespace

Listener::Listener(Endpoint& endpoint, ListenerOptions options)
    : endpoint_(endpoint), reactor_(endpoint.reactor()), options_(std::move(options)) {
  if (options_.backlog < 1) throw std::invalid_argument("evwheel: listener backlog must be >= 1");
  if (options_.accept_batch < 1) throw std::invalid_argument("evwheel: listener accept_batch must be >= 1");
  if (options_.proxy_protocol != ProxyProtocol::off && options_.proxy_timeout <= Duration::zero())
    throw std::invalid_argument("evwheel: listener proxy_timeout must be > 0");
  Address address = Address::parse(options_.address);
  if (options_.reuse_port && address.family() == AF_UNIX)
    throw std::invalid_argument("evwheel: listener reuse_port needs a TCP address, not '" + options_.address + "'");
  open_socket(address);
  reserve_fd_ = open_reserve();
  try {
    if (auto* websocket = dynamic_cast<const WebSocketCodec*>(&endpoint_.codec()))
      websocket_gate_ = std::make_unique<WebSocketGate>(endpoint_, *websocket, stats_.websocket);
    if (options_.proxy_protocol != ProxyProtocol::off)
      gate_ = std::make_unique<ProxyGate>(
          reactor_, [this](int fd, const SocketAddress* client) { admit(fd, client); }, options_.proxy_protocol,
          options_.proxy_timeout, stats_.proxy_failures, options_.on_proxy_error);
    reactor_.add(fd_, EPOLLIN, *this);
  } catch (...) {
    close();
    throw;
  }
}

void Listener::open_socket(const Address& address) {
  if (!address.unix_path().empty()) SocketFile::clear_stale(address, options_.address);
  fd_ = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "evwheel: socket " + options_.address);
  auto fail = [&](const char* what) {
    int error = errno;
    close();
    throw std::system_error(error, std::generic_category(),
                            std::string("evwheel: ") + what + " " + options_.address);
  };
  int one = 1, v6_only = options_.v6_only;
  if (address.family() != AF_UNIX && ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
    fail("SO_REUSEADDR");
  if (options_.reuse_port && ::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) fail("SO_REUSEPORT");
  // Set either way: the system default (net.ipv6.bindv6only) must not decide what [::] means.
  if (address.family() == AF_INET6 && ::setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &v6_only, sizeof v6_only) < 0)
    fail("IPV6_V6ONLY");
  if (::bind(fd_, address.get(), address.length()) < 0) fail("bind");
  if (!address.unix_path().empty()) socket_file_ = std::make_unique<SocketFile>(address);
  if (::listen(fd_, options_.backlog) < 0) fail("listen");
  address_ = Address::local_of(fd_);
  if (address_.family() == AF_UNSPEC) fail("getsockname");
}

Listener::~Listener() { close(); }

void Listener::close() noexcept {
  if (fd_ < 0) return;
  if (resume_timer_) reactor_.cancel(resume_timer_);
  resume_timer_ = 0;
  reactor_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
  reserve_fd_ = -1;
  if (socket_file_) socket_file_->remove();
}

void Listener::admit(int fd, const SocketAddress* client) {
  if (websocket_gate_)
    websocket_gate_->hold(fd, client);
  else
    endpoint_.adopt(fd, Endpoint::Adoption{nullptr, client, nullptr});
}

void Listener::shed(int fd) noexcept {
  reset_close(fd);  // a reset tells the client at once; no TIME_WAIT left behind
}

void Listener::on_io(uint32_t) {
  // fd_ is checked each round: an on_open may close this listener (a shutdown it started).
  for (int i = 0; i < options_.accept_batch && fd_ >= 0; ++i) {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      if (options_.max_connections &&
          endpoint_.size() + awaiting_header() + handshaking() >= options_.max_connections) {
        ++stats_.shed_limit;
        log(LogLevel::info, "listener %s: shed a connection: max_connections (%zu) reached",
            options_.address.c_str(), options_.max_connections);
        shed(fd);
        continue;
      }
      ++stats_.accepted;
      if (gate_) {
        gate_->hold(fd);
      } else {
        admit(fd, nullptr);
      }
      continue;
    }
    int error = errno;
    switch (error) {
      case EAGAIN:
        return;
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
        continue;  // that one connection is gone; the next may be fine
      default:
        ++stats_.accept_errors;
        stats_.last_error = error;
        log(LogLevel::error, "listener %s: accept: %s", options_.address.c_str(), std::strerror(error));
        if (!out_of_descriptors(error)) return;
    }
  }
}

bool Listener::out_of_descriptors(int error) {
  if ((error == EMFILE || error == ENFILE) && reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    int accept_error = fd < 0 ? errno : 0;
    if (fd >= 0) {
      ++stats_.shed_descriptors;
      log(LogLevel::warning, "listener %s: shed a connection: out of descriptors",
          options_.address.c_str());
      shed(fd);
    }
    reserve_fd_ = open_reserve();
    if (reserve_fd_ >= 0) {
      if (fd >= 0) return true;
      // accept4 takes a descriptor before it looks at the queue, so a full table reports EMFILE
      // even when nobody is waiting.  Nothing to shed then, and no reason to pause: the
      // listening socket becomes readable again when the next connection arrives.
      if (accept_error == EAGAIN || accept_error == EWOULDBLOCK) return false;
    }
  }
  pause();
  return false;
}

void Listener::pause() {
  ++stats_.pauses;
  log(LogLevel::error, "listener %s: accepting paused for %lld ms (%s)", options_.address.c_str(),
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(options_.retry_after).count()),
      std::strerror(stats_.last_error));
  // Out of epoll, not just muted: an interest mask of 0 still reports EPOLLHUP and EPOLLERR,
  // and a listening socket in error would spin the loop.  The queue stays in the kernel until
  // we look again.
  reactor_.remove(fd_);
  resume_timer_ = reactor_.run_after(options_.retry_after, [this] {
    resume_timer_ = 0;
    if (reserve_fd_ < 0) reserve_fd_ = open_reserve();
    try {
      reactor_.add(fd_, EPOLLIN, *this);
    } catch (const std::system_error& error) {
      stats_.last_error = error.code().value();
      pause();  // try again later rather than never
    }
  });
}

}  // namespace evwheel
