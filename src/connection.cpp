// connection — see include/evwheel/connection.hpp.  The read path: one recv into the
// engine's scratch area, frames decoded in place, only a partial frame is copied out.  The
// write path: sendmsg of header + payload at once when nothing is queued, else queue.
#include "evwheel/connection.hpp"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <exception>

#include "evwheel/engine.hpp"
#include "evwheel/log.hpp"

namespace evwheel {

static_assert(sizeof(Connection) <= 104, "an idle connection must stay within its memory budget");

const char* to_string(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::peer_closed: return "peer closed";
    case CloseReason::reset: return "reset";
    case CloseReason::idle_timeout: return "idle timeout";
    case CloseReason::protocol_error: return "protocol error";
    case CloseReason::output_overflow: return "output overflow";
    case CloseReason::local_close: return "local close";
    case CloseReason::shutdown: return "shutdown";
    case CloseReason::error: return "error";
  }
  return "unknown";
}

Connection::Connection(detail::Engine& engine, int fd, TimePoint now) noexcept
    : HeartbeatEntry(&Connection::on_heartbeat, now),
      read_armed_(true),
      write_armed_(false),
      read_paused_(false),
      peer_eof_(false),
      high_water_(false),
      fd_(fd),
      engine_(&engine) {}

Connection::~Connection() = default;

Endpoint& Connection::endpoint() const noexcept { return engine_->endpoint; }

ConnectionId Connection::id() const noexcept {
  const Reactor& reactor = engine_->reactor;
  return ConnectionId{reactor.generation(fd_), fd_, reactor.index(), engine_->number};
}

template <class Body>
bool Connection::guarded(Body&& body) {
  ++busy_;
  try {
    body();
  } catch (const std::exception& error) {
    log(LogLevel::error, "fd %d: exception in a callback: %s; closing the connection", fd_, error.what());
    close(CloseReason::error, 0);
  } catch (...) {
    log(LogLevel::error, "fd %d: non-standard exception in a callback; closing the connection", fd_);
    close(CloseReason::error, 0);
  }
  if (--busy_ == 0 && state_ == State::closed) {
    engine_->owner.recycle(*this);
    return false;
  }
  return state_ != State::closed;
}

void Connection::on_io(uint32_t events) {
  guarded([&] {
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_input();
    if (state_ != State::closed && (events & EPOLLOUT)) flush_output();
  });
}

bool Connection::notify_open() {
  return guarded([&] { engine_->handler.on_open(*this); });
}

bool Connection::send_guarded(std::string_view payload) {
  bool sent = false;
  guarded([&] { sent = send_frame(FrameType::data, payload.data(), payload.size()); });
  return sent;
}

void Connection::on_heartbeat(TimerEntry& entry) {
  auto& connection = static_cast<Connection&>(static_cast<HeartbeatEntry&>(entry));
  connection.guarded([&] { connection.check_liveness(); });
}

void Connection::check_liveness() {
  Heartbeat& heartbeat = engine_->heartbeat;
  TimePoint now = engine_->reactor.now();
  if (!read_paused_ && heartbeat.silent(*this, now)) {
    int waiting = 0;
    if (::ioctl(fd_, FIONREAD, &waiting) == 0 && waiting > 0) {
      // Silent only because we were slow to read: not the peer's fault.
      heartbeat.late_read();
      read_input();
      if (state_ == State::closed) return;
    }
  }
  switch (heartbeat.judge(*this, now, asking(), read_paused_)) {
    case Heartbeat::Verdict::dead: return close(CloseReason::idle_timeout, 0);
    case Heartbeat::Verdict::ping: send_ping(true); break;
    case Heartbeat::Verdict::alive: break;
  }
  if (state_ != State::closed) heartbeat.rearm(*this, now, asking());
}

void Connection::read_input() {
  char* scratch = engine_->scratch.get();
  std::size_t capacity = engine_->limits.read_size;
  // A few rounds at most, so one busy peer cannot hold the loop; a short read means the
  // socket is drained, which spares the recv that would only say EAGAIN.
  for (int round = 0; round < 4 && state_ != State::closed && !peer_eof_; ++round) {
    ssize_t got = ::recv(fd_, scratch, capacity, 0);
    if (got > 0) {
      received(engine_->reactor.now());
      if (!take_input(scratch, static_cast<std::size_t>(got))) return;
      if (static_cast<std::size_t>(got) < capacity) return;
    } else if (got == 0) {
      return on_peer_eof();
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;
    } else if (errno != EINTR) {
      return fail(errno);
    }
  }
}

bool Connection::take_input(const char* bytes, std::size_t size) {
  std::size_t used = 0;
  if (input_) {
    input_->append(bytes, size);
    if (!consume_frames(input_->data(), input_->size(), &used)) return false;
    input_->consume(used);
    if (input_->empty()) {
      engine_->buffers.release(input_);
      input_ = nullptr;
    }
    return true;
  }
  if (!consume_frames(bytes, size, &used)) return false;
  if (used < size) {
    input_ = engine_->buffers.acquire();
    input_->append(bytes + used, size - used);
  }
  return true;
}

bool Connection::consume_frames(const char* bytes, std::size_t size, std::size_t* used) {
  const Codec& codec = *engine_->codec;
  std::size_t offset = 0;
  while (offset < size) {
    Frame frame;
    std::ptrdiff_t length = codec.decode(std::string_view(bytes + offset, size - offset), frame);
    if (length < 0) {
      engine_->heartbeat.protocol_error();
      close(CloseReason::protocol_error, 0);
      return false;
    }
    if (length == 0) break;
    offset += static_cast<std::size_t>(length);
    dispatch_frame(frame);
    if (state_ == State::closed) return false;
  }
  *used = offset;
  return true;
}

void Connection::dispatch_frame(const Frame& frame) {
  switch (frame.type) {
    case FrameType::data:
      engine_->handler.on_message(*this, frame.payload);
      break;
    case FrameType::ping:
      if (send_frame(FrameType::pong, frame.payload.data(), frame.payload.size()))
        engine_->heartbeat.ping_answered();
      break;
    case FrameType::pong:
      on_pong(frame);
      break;
  }
}

void Connection::on_pong(const Frame& frame) {
  Heartbeat& heartbeat = engine_->heartbeat;
  TimePoint now = engine_->reactor.now();
  if (heartbeat.on_pong(*this, frame.payload.data(), frame.payload.size(), now, asking()) ==
          Heartbeat::Verdict::ping &&
      send_ping(true))
    heartbeat.rearm(*this, now, asking());
}

void Connection::on_peer_eof() {
  peer_eof_ = true;
  if (!output_) return close(CloseReason::peer_closed, 0);
  // Our answer may still matter to a peer that only half-closed: stop reading, finish writing.
  update_interest();
}

bool Connection::send(std::string_view payload) {
  engine_->reactor.assert_in_loop_thread();
  return send_frame(FrameType::data, payload.data(), payload.size());
}

bool Connection::ping() {
  engine_->reactor.assert_in_loop_thread();
  return send_ping(false);
}

bool Connection::send_ping(bool scheduled) {
  // A fresh clock read, not the iteration's: if the loop was blocked earlier in this
  // iteration, a stale send time would shorten the peer's grace to answer (and the RTT).
  TimePoint now = engine_->reactor.update_now();
  char payload[Heartbeat::kMaxPingPayload];
  std::size_t size = engine_->heartbeat.stamp(now, payload);
  if (!send_frame(FrameType::ping, payload, size)) return false;
  engine_->heartbeat.ping_sent(*this, now, scheduled);
  return true;
}

bool Connection::send_frame(FrameType type, const char* payload, std::size_t size) {
  if (state_ != State::open) return false;
  char header[Codec::kMaxHeader];
  int header_size = engine_->codec->encode_header(type, size, header);
  if (header_size < 0) return false;
  sent();
  return write_parts(header, static_cast<std::size_t>(header_size), payload, size);
}

bool Connection::write_parts(const char* head, std::size_t head_size, const char* body,
                             std::size_t body_size) {
  if (output_) return queue_output(head, head_size, body, body_size, 0);
  iovec parts[2] = {{const_cast<char*>(head), head_size}, {const_cast<char*>(body), body_size}};
  msghdr message{};
  message.msg_iov = parts;
  message.msg_iovlen = body_size ? 2 : 1;
  ssize_t sent = ::sendmsg(fd_, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      fail(errno);
      return false;
    }
    sent = 0;
  }
  if (static_cast<std::size_t>(sent) == head_size + body_size) return true;
  return queue_output(head, head_size, body, body_size, static_cast<std::size_t>(sent));
}

bool Connection::queue_output(const char* head, std::size_t head_size, const char* body,
                              std::size_t body_size, std::size_t already_sent) {
  const detail::Engine::Limits& limits = engine_->limits;
  std::size_t pending = queued() + head_size + body_size - already_sent;
  if (pending > limits.max_output) {
    close(CloseReason::output_overflow, 0);
    return false;
  }
  if (!output_) output_ = engine_->buffers.acquire();
  if (already_sent < head_size) {
    output_->append(head + already_sent, head_size - already_sent);
    output_->append(body, body_size);
  } else {
    output_->append(body + (already_sent - head_size), body_size - (already_sent - head_size));
  }
  update_interest();
  if (!high_water_ && pending >= limits.high_water) {
    high_water_ = true;
    engine_->handler.on_high_water(*this, pending);
  }
  return state_ != State::closed;
}

void Connection::flush_output() {
  if (!output_) return;
  ssize_t sent = ::send(fd_, output_->data(), output_->size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) fail(errno);
    return;
  }
  output_->consume(static_cast<std::size_t>(sent));
  if (!output_->empty()) return;
  engine_->buffers.release(output_);
  output_ = nullptr;
  if (peer_eof_) return close(CloseReason::peer_closed, 0);
  if (engine_->draining) return close(CloseReason::shutdown, 0);
  update_interest();
  if (state_ == State::half_closed) ::shutdown(fd_, SHUT_WR);
  if (high_water_) {
    high_water_ = false;
    engine_->handler.on_drain(*this);
  }
}

void Connection::update_interest() {
  bool read = !peer_eof_ && !read_paused_;
  bool write = output_ != nullptr;
  if (read == read_armed_ && write == write_armed_) return;
  engine_->reactor.modify(fd_, (read ? uint32_t{EPOLLIN} : 0u) | (write ? uint32_t{EPOLLOUT} : 0u));
  read_armed_ = read;
  write_armed_ = write;
}

void Connection::pause_reading() {
  engine_->reactor.assert_in_loop_thread();
  if (state_ == State::closed || read_paused_) return;
  read_paused_ = true;
  update_interest();
}

void Connection::resume_reading() {
  engine_->reactor.assert_in_loop_thread();
  if (state_ == State::closed || !read_paused_) return;
  read_paused_ = false;
  update_interest();
}

void Connection::shutdown() {
  engine_->reactor.assert_in_loop_thread();
  if (state_ != State::open) return;
  state_ = State::half_closed;
  if (!output_) ::shutdown(fd_, SHUT_WR);
}

std::size_t Connection::queued() const noexcept { return output_ ? output_->size() : 0; }

Address Connection::peer_address() const noexcept {
  if (const SocketAddress* client = engine_->proxied_clients.find(fd_)) return *client;
  return Address::peer_of(fd_);
}

Address Connection::local_address() const noexcept { return Address::local_of(fd_); }

void Connection::fail(int error) {
  bool reset = error == ECONNRESET || error == EPIPE;
  close(reset ? CloseReason::reset : CloseReason::error, error);
}

void Connection::close(CloseReason reason, int error) {
  engine_->reactor.assert_in_loop_thread();
  if (state_ == State::closed) return;
  state_ = State::closed;
  detail::Engine& engine = *engine_;
  engine.reactor.remove(fd_);
  engine.heartbeat.stop(*this);
  if (reason == CloseReason::idle_timeout || reason == CloseReason::protocol_error ||
      reason == CloseReason::output_overflow) {
    linger abort{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  engine.buffers.release(input_);
  engine.buffers.release(output_);
  input_ = output_ = nullptr;
  engine.owner.closed(*this, reason, error);
  if (busy_ == 0) engine.owner.recycle(*this);
}

}  // namespace evwheel
