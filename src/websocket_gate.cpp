// websocket_gate — see include/evwheel/websocket_gate.hpp.
#include "evwheel/websocket_gate.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <exception>
#include <system_error>

#include "evwheel/log.hpp"
#include "http_head.hpp"
#include "websocket_handshake.hpp"

namespace evwheel {

namespace {

bool send_all(int fd, const std::string& bytes) noexcept {
  // A handshake's answer is far smaller than a fresh socket's send buffer: all or nothing.
  ssize_t sent;
  do {
    sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  return sent == static_cast<ssize_t>(bytes.size());
}

}  // namespace

struct WebSocketGate::Waiting final : WaitingSocket {
  Waiting() noexcept : WaitingSocket(&WebSocketGate::expired) {}
  void on_io(uint32_t events) override { gate->examine(*this, events); }
  WebSocketGate* gate = nullptr;
  SocketAddress client{};  // AF_UNSPEC: no PROXY header named one
  http::HeadScanner scanner;
};

WebSocketGate::WebSocketGate(Endpoint& endpoint, const WebSocketCodec& codec, WebSocketGateStats& stats)
    : endpoint_(endpoint),
      codec_(codec),
      stats_(stats),
      peek_(new char[codec.options().max_request + 1]),
      room_(endpoint.reactor(), codec.options().handshake_timeout) {}

WebSocketGate::~WebSocketGate() = default;

void WebSocketGate::hold(int fd, const SocketAddress* client) {
  Waiting& waiting = room_.enter(fd, [this](Waiting& slot) { slot.gate = this; });
  waiting.client = client ? *client : SocketAddress{};
  waiting.scanner = http::HeadScanner(codec_.options().max_request);
  // A client sends its request right after connecting: usually it is whole already, and the
  // socket is answered without an epoll registration or a timer of its own.
  if (examine(waiting, 0)) room_.wait(waiting);
}

void WebSocketGate::expired(TimerEntry& entry) {
  auto& waiting = static_cast<Waiting&>(entry);
  waiting.gate->drop(waiting);
}

bool WebSocketGate::examine(Waiting& waiting, uint32_t events) {
  std::size_t capacity = codec_.options().max_request + 1;
  ssize_t got;
  do {
    got = ::recv(waiting.fd, peek_.get(), capacity, MSG_PEEK);
  } while (got < 0 && errno == EINTR);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // nothing yet
  if (got <= 0) {
    drop(waiting);
    return false;
  }
  switch (waiting.scanner.scan(std::string_view(peek_.get(), static_cast<std::size_t>(got)))) {
    case http::HeadScanner::Status::need_more:
      // After the peer's FIN nothing more can come to complete it.
      if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return true;
      drop(waiting);
      return false;
    case http::HeadScanner::Status::too_large:
      response_.clear();
      websocket::write_refusal(websocket::Refusal::fields_too_large, response_);
      // What was peeked goes; should the client keep sending, the close becomes a reset.
      finish(waiting, static_cast<std::size_t>(got), false, nullptr, stats_.refused);
      return false;
    case http::HeadScanner::Status::complete:
      answer(waiting, peek_.get(), waiting.scanner.length());
      return false;
  }
  return false;
}

void WebSocketGate::answer(Waiting& waiting, const char* head, std::size_t length) {
  websocket::UpgradeRequest request;
  websocket::parse_upgrade_request(std::string_view(head, length), request);
  SocketAddress peer = waiting.client;
  socklen_t peer_length = sizeof peer;
  if (peer.any.sa_family == AF_UNSPEC && ::getpeername(waiting.fd, &peer.any, &peer_length) < 0)
    peer.any.sa_family = AF_UNSPEC;
  WebSocketRequest view(request, peer);
  const WebSocketOptions& options = codec_.options();
  response_.clear();
  switch (request.kind) {
    case websocket::RequestKind::upgrade: {
      UpgradeDecision decision;
      try {
        if (options.on_upgrade) options.on_upgrade(view, decision);
        if (decision.accept && !decision.subprotocol.empty() && !request.offers(decision.subprotocol))
          throw std::invalid_argument("chose subprotocol '" + decision.subprotocol + "', which the client did not offer");
        if (decision.accept) websocket::write_accept(request.key, decision.subprotocol, response_);
      } catch (const std::exception& error) {
        log(LogLevel::error, "fd %d: websocket on_upgrade: %s; refusing the upgrade", waiting.fd, error.what());
        decision = UpgradeDecision{false, {}, 403, nullptr};
        response_.clear();
      }
      if (decision.accept) return finish(waiting, length, true, decision.context, stats_.upgrades);
      websocket::Refusal refusal = decision.refuse_with == 400   ? websocket::Refusal::bad_request
                                   : decision.refuse_with == 404 ? websocket::Refusal::not_found
                                                                 : websocket::Refusal::forbidden;
      websocket::write_refusal(refusal, response_);
      return finish(waiting, length, false, nullptr, stats_.refused);
    }
    case websocket::RequestKind::not_websocket: {
      HttpPage page;
      bool served = false;
      try {
        served = options.on_page && options.on_page(view, page);
        if (served) websocket::write_page(page.content_type, page.body, response_);
      } catch (const std::exception& error) {
        log(LogLevel::error, "fd %d: websocket on_page: %s; answering 404", waiting.fd, error.what());
        served = false;
        response_.clear();
      }
      if (!served) websocket::write_refusal(websocket::Refusal::not_found, response_);
      return finish(waiting, length, false, nullptr, stats_.pages);
    }
    case websocket::RequestKind::bad_request:
    case websocket::RequestKind::wrong_version:
    case websocket::RequestKind::too_large:
      websocket::write_refusal(websocket::refusal_for(request.kind), response_);
      return finish(waiting, length, false, nullptr, stats_.refused);
  }
}

void WebSocketGate::finish(Waiting& waiting, std::size_t head_length, bool upgraded, void* context,
                           uint64_t& answered) {
  // The peeked head is in the socket and only this gate reads it, so this takes exactly the
  // head; anything short means the socket broke in between.
  if (head_length > 0 && ::recv(waiting.fd, peek_.get(), head_length, 0) != static_cast<ssize_t>(head_length))
    return drop(waiting);
  if (!send_all(waiting.fd, response_)) return drop(waiting);
  ++answered;
  int fd = waiting.fd;
  SocketAddress client = waiting.client;
  room_.leave(waiting);
  if (!upgraded) {
    ::close(fd);  // the answer says "Connection: close"
    return;
  }
  // Last: on_open runs inside and may destroy the Listener, and this gate with it.
  endpoint_.adopt(fd, Endpoint::Adoption{nullptr, client.any.sa_family == AF_UNSPEC ? nullptr : &client, context});
}

void WebSocketGate::drop(Waiting& waiting) noexcept {
  ++stats_.abandoned;
  room_.reset(waiting);
}

}  // namespace evwheel
