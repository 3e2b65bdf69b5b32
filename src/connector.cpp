// connector — see include/evwheel/connector.hpp.
#include "evwheel/connector.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "evwheel/log.hpp"
#include "http_head.hpp"
#include "resolver.hpp"
#include "websocket_handshake.hpp"

namespace evwheel {

const char* connect_error_string(int error) noexcept {
  return error < 0 ? ::gai_strerror(error) : std::strerror(error);
}

Connector::Connector(Endpoint& endpoint, ConnectorOptions options)
    : endpoint_(endpoint),
      reactor_(endpoint.reactor()),
      options_(std::move(options)),
      websocket_(dynamic_cast<const WebSocketCodec*>(&endpoint.codec())),
      random_(static_cast<std::minstd_rand::result_type>(
          reinterpret_cast<uintptr_t>(this) ^ static_cast<uintptr_t>(reactor_.now().time_since_epoch().count()))) {
  if (options_.connect_timeout <= Duration::zero() || options_.backoff_initial <= Duration::zero() ||
      options_.backoff_max < options_.backoff_initial)
    throw std::invalid_argument("evwheel: connector times must be > 0 and backoff_max >= backoff_initial");
  name_ = HostName::parse(options_.address);
  if (!name_) addresses_.push_back(Address::parse(options_.address));
  if (!options_.source.empty()) {
    local_ = Address::parse_host(options_.source);
    if (!name_ && addresses_[0].family() != local_.family())
      throw std::invalid_argument("evwheel: connector source '" + options_.source + "' cannot reach '" +
                                  options_.address + "' (another address family)");
  }
}

Connector::~Connector() {
  stop();
  if (!connection_) return;
  // Its close may outlive us (a WebSocket close handshake waits for the peer): nobody is to
  // tell us about it.
  Connection* connection = connection_;
  connection_ = nullptr;
  endpoint_.observe(*connection, nullptr);
  connection->close();
}

void Connector::start() {
  if (state_ != State::idle && state_ != State::stopped) return;
  failures_ = 0;
  attempt();
}

void Connector::stop() {
  cancel_timer();
  cancel_lookup();
  abandon_socket();
  state_ = connection_ ? State::connected : State::stopped;
  if (connection_) options_.reconnect = false;
}

void Connector::cancel_timer() noexcept {
  if (timer_) reactor_.cancel(timer_);
  timer_ = 0;
}

void Connector::cancel_lookup() noexcept {
  if (lookup_) lookup_->cancel();
  lookup_.reset();
}

void Connector::abandon_socket() noexcept {
  handshaking_ = false;
  if (fd_ < 0) return;
  reactor_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

void Connector::attempt() {
  ++attempts_;
  next_address_ = 0;
  if (!name_) return try_next();
  state_ = State::resolving;
  try {
    lookup_ = Lookup::start(reactor_, name_->host, name_->port, local_.family(),
                            [this](int error, std::vector<Address> addresses) { resolved(error, std::move(addresses)); });
  } catch (const std::system_error& error) {
    pass_failed(error.code().value());
  }
}

void Connector::resolved(int error, std::vector<Address> addresses) {
  lookup_.reset();
  if (error) return pass_failed(error);
  addresses_ = std::move(addresses);
  try_next();
}

void Connector::try_next() {
  while (next_address_ < addresses_.size())
    if (open_socket(addresses_[next_address_++])) return;
  pass_failed(last_error_);
}

bool Connector::open_socket(const Address& remote) {
  remote_ = remote;
  state_ = State::connecting;
  auto failed_now = [this](int error) {
    abandon_socket();
    last_error_ = error;
    return false;
  };
  fd_ = ::socket(remote.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return failed_now(errno);
  if (local_.family() != AF_UNSPEC) {
    // The kernel picks the port at connect time, per destination: one source address then
    // serves far more than the ~28k ephemeral ports a bind-time choice would allow.
    int one = 1;
    ::setsockopt(fd_, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(fd_, local_.get(), local_.length()) < 0) return failed_now(errno);
  }
  if (::connect(fd_, remote.get(), remote.length()) == 0) {
    connected();
    return true;
  }
  // A Unix socket whose listener's queue is full says EAGAIN: a failure like a refusal.
  if (errno != EINPROGRESS) return failed_now(errno);
  try {
    reactor_.add(fd_, EPOLLOUT, *this);
  } catch (const std::system_error& error) {
    return failed_now(error.code().value());
  }
  timer_ = reactor_.run_after(options_.connect_timeout, [this] {
    timer_ = 0;
    address_failed(ETIMEDOUT);
  });
  return true;
}

void Connector::on_io(uint32_t events) {
  if (handshaking_) return read_handshake(events);
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length) < 0) error = errno;
  if (error) return address_failed(error);
  cancel_timer();
  reactor_.remove(fd_);
  connected();
}

void Connector::connected() {
  if (websocket_ && !handshaking_) return start_handshake();
  handshaking_ = false;
  int fd = fd_;
  fd_ = -1;
  failures_ = 0;
  state_ = State::connected;
  // adopt() runs on_open, which may close the connection again (on_connection_closed runs then).
  connection_ = endpoint_.adopt(fd, this);
  if (!connection_ && state_ == State::connected) {
    state_ = State::idle;
    retry_later();
  }
}

void Connector::start_handshake() {
  const WebSocketOptions& options = websocket_->options();
  websocket::ClientRequest request;
  // The Host field: the name or address we connect to (a Unix socket has none).
  request.host = !options.host.empty() ? options.host
                 : options_.address.compare(0, 5, "unix:") == 0 ? "localhost"
                                                                : options_.address;
  request.path = options.path;
  request.subprotocols = options.subprotocols;
  request.fields = options.fields;
  std::string bytes;
  try {
    websocket_key_ = websocket::random_client_key();
    websocket::write_client_request(request, websocket_key_, bytes);
  } catch (const std::system_error& error) {
    return address_failed(error.code().value());
  } catch (const std::invalid_argument& error) {
    log(LogLevel::error, "connector %s: websocket handshake: %s", options_.address.c_str(), error.what());
    return address_failed(EINVAL);
  }
  // A fresh socket's send buffer takes the whole request at once.
  if (::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
    return address_failed(errno ? errno : EIO);
  handshaking_ = true;
  try {
    reactor_.add(fd_, EPOLLIN | EPOLLRDHUP, *this);  // off epoll since the connect completed
  } catch (const std::system_error& error) {
    return address_failed(error.code().value());
  }
  if (!timer_)
    timer_ = reactor_.run_after(options_.connect_timeout, [this] {
      timer_ = 0;
      address_failed(ETIMEDOUT);
    });
}

void Connector::read_handshake(uint32_t events) {
  char head[http::kDefaultMaxHead + 1];
  ssize_t got = ::recv(fd_, head, sizeof head, MSG_PEEK);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (got <= 0) return address_failed(got == 0 ? ECONNRESET : errno);
  http::HeadScanner scanner;
  switch (scanner.scan(std::string_view(head, static_cast<std::size_t>(got)))) {
    case http::HeadScanner::Status::need_more:
      if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) return address_failed(ECONNRESET);
      return;
    case http::HeadScanner::Status::too_large:
      log(LogLevel::warning, "connector %s: websocket handshake: the answer's head is too large", options_.address.c_str());
      return address_failed(EPROTO);
    case http::HeadScanner::Status::complete:
      break;
  }
  websocket::UpgradeResponse response;
  websocket::check_upgrade_response(std::string_view(head, scanner.length()), websocket_key_,
                                    websocket_->options().subprotocols, response);
  if (response.error != websocket::ResponseError::none) {
    log(LogLevel::warning, "connector %s: websocket handshake refused: %s (status %u)", options_.address.c_str(),
        websocket::to_string(response.error), static_cast<unsigned>(response.head.status));
    return address_failed(EPROTO);
  }
  // Exactly the head: frames the server sent right behind it stay for the Connection.
  if (::recv(fd_, head, scanner.length(), 0) != static_cast<ssize_t>(scanner.length())) return address_failed(ECONNRESET);
  cancel_timer();
  reactor_.remove(fd_);
  connected();
}

void Connector::address_failed(int error) {
  cancel_timer();
  abandon_socket();
  last_error_ = error;
  try_next();
}

void Connector::pass_failed(int error) {
  last_error_ = error;
  state_ = State::idle;
  ++failures_;
  endpoint_.handler().on_connect_error(*this, error);
  // The handler may have stopped or restarted the connector; only an idle one waits.
  if (state_ == State::idle) retry_later();
}

void Connector::retry_later() {
  if (!options_.reconnect || state_ == State::stopped) return;
  state_ = State::waiting;
  timer_ = reactor_.run_after(backoff(), [this] {
    timer_ = 0;
    attempt();
  });
}

Duration Connector::backoff() noexcept {
  unsigned doublings = std::min(failures_ > 0 ? failures_ - 1 : 0u, 30u);
  Duration full = std::min(options_.backoff_max, options_.backoff_initial * (int64_t{1} << doublings));
  std::uniform_int_distribution<int64_t> half(0, full.count() / 2);
  return full - Duration(half(random_));
}

void Connector::on_connection_closed(Connection&, CloseReason reason) {
  connection_ = nullptr;
  if (state_ != State::connected) return;
  state_ = State::idle;
  if (reason != CloseReason::shutdown) retry_later();
}

}  // namespace evwheel
