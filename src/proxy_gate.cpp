// proxy_gate — see include/evwheel/proxy_gate.hpp.
#include "evwheel/proxy_gate.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <system_error>

namespace evwheel {

ProxyGate::ProxyGate(Reactor& reactor, Next next, ProxyProtocol accepted, Duration timeout,
                     uint64_t (&failures)[kProxyErrors], const ProxyErrorCallback& on_error)
    : next_(std::move(next)), accepted_(accepted), failures_(failures), on_error_(on_error), room_(reactor, timeout) {}

void ProxyGate::hold(int fd) {
  Waiting& waiting = room_.enter(fd, [this](Waiting& slot) { slot.gate = this; });
  // A proxy writes its header right after connecting, so it is usually in already: then the
  // socket goes straight on, without an epoll registration or a timer of its own.
  if (examine(waiting, 0)) room_.wait(waiting);
}

void ProxyGate::expired(TimerEntry& entry) {
  auto& waiting = static_cast<Waiting&>(entry);
  waiting.gate->refuse(waiting, ProxyError::timeout);
}

bool ProxyGate::examine(Waiting& waiting, uint32_t events) {
  char bytes[kProxyMaxHeader];
  ssize_t got;
  do {
    got = ::recv(waiting.fd, bytes, sizeof bytes, MSG_PEEK);
  } while (got < 0 && errno == EINTR);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // nothing yet
  if (got <= 0) {
    refuse(waiting, ProxyError::closed);
    return false;
  }
  ProxyHeader header = parse_proxy_header(std::string_view(bytes, static_cast<std::size_t>(got)), accepted_);
  switch (header.status) {
    case ProxyHeader::Status::need_more:
      // After the peer's FIN nothing more can come to complete it.
      if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return true;
      refuse(waiting, ProxyError::closed);
      return false;
    case ProxyHeader::Status::error:
      refuse(waiting, header.error);
      return false;
    case ProxyHeader::Status::done:
      pass(waiting, header, bytes);
      return false;
  }
  return false;
}

void ProxyGate::pass(Waiting& waiting, const ProxyHeader& header, char* scratch) {
  // The peeked bytes are in the socket and only this gate reads it, so this takes exactly the
  // header; anything short means the socket broke in between.
  ssize_t got = ::recv(waiting.fd, scratch, header.length, 0);
  if (got != static_cast<ssize_t>(header.length)) return refuse(waiting, ProxyError::closed);
  int fd = waiting.fd;
  room_.leave(waiting);
  // Last: on_open runs inside and may destroy the Listener, and this gate with it.
  next_(fd, header.local ? nullptr : &header.source);
}

void ProxyGate::refuse(Waiting& waiting, ProxyError reason) {
  ++failures_[static_cast<std::size_t>(reason)];
  int fd = waiting.fd;
  SocketAddress peer{};
  socklen_t length = sizeof peer;
  if (on_error_ && ::getpeername(fd, &peer.any, &length) < 0) peer.any.sa_family = AF_UNSPEC;
  room_.reset(waiting);
  if (!on_error_) return;
  try {
    on_error_(reason, peer);
  } catch (...) {
    // Documented: swallowed; the socket is gone either way.
  }
}

}  // namespace evwheel
