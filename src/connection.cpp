// connection — see include/evwheel/connection.hpp.  The read path: one recv into the
// engine's scratch area, frames decoded in place, only a partial frame is copied out.  The
// write path: header + payload in one system call when nothing is queued (send of one copy
// for small frames, sendmsg of both parts for large ones), else queue.
#include "evwheel/connection.hpp"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "evwheel/engine.hpp"
#include "evwheel/log.hpp"

namespace evwheel {

static_assert(sizeof(Connection) <= 104, "an idle connection must stay within its memory budget");

namespace {
// Frames up to this size are copied into one buffer and sent with send(); larger ones go out
// with sendmsg() from where they are, as copying them would cost more than the vector does.
constexpr std::size_t kContiguousSend = 512;
}  // namespace

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
      state_(static_cast<uint8_t>(State::open)),
      read_armed_(true),
      write_armed_(false),
      read_paused_(false),
      peer_eof_(false),
      high_water_(false),
      closing_shutdown_(false),
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
  if (--busy_ == 0 && state() == State::closed) {
    engine_->owner.recycle(*this);
    return false;
  }
  return state() != State::closed;
}

void Connection::on_io(uint32_t events) {
  guarded([&] {
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_input();
    if (state() != State::closed && (events & EPOLLOUT)) flush_output();
  });
}

bool Connection::notify_open() {
  return guarded([&] { engine_->handler.on_open(*this); });
}

bool Connection::send_guarded(std::string_view payload) {
  bool sent = false;
  guarded([&] { sent = send_message(payload, MessageType::binary); });
  return sent;
}

void Connection::on_heartbeat(TimerEntry& entry) {
  auto& connection = static_cast<Connection&>(static_cast<HeartbeatEntry&>(entry));
  connection.guarded([&] { connection.check_liveness(); });
}

void Connection::check_liveness() {
  if (state() == State::closing) {
    // The peer never answered our close frame: stop waiting, and free its memory at once.
    linger abort{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    return close(closing_shutdown_ ? CloseReason::shutdown : CloseReason::local_close, 0);
  }
  Heartbeat& heartbeat = engine_->heartbeat;
  TimePoint now = engine_->reactor.now();
  if (!read_paused_ && heartbeat.silent(*this, now)) {
    int waiting = 0;
    if (::ioctl(fd_, FIONREAD, &waiting) == 0 && waiting > 0) {
      // Silent only because we were slow to read: not the peer's fault.
      heartbeat.late_read();
      read_input();
      if (state() == State::closed) return;
    }
  }
  switch (heartbeat.judge(*this, now, asking(), read_paused_)) {
    case Heartbeat::Verdict::dead: return close(CloseReason::idle_timeout, 0);
    case Heartbeat::Verdict::ping: send_ping(true); break;
    case Heartbeat::Verdict::alive: break;
  }
  if (state() != State::closed) heartbeat.rearm(*this, now, asking());
}

void Connection::read_input() {
  char* scratch = engine_->scratch.get();
  std::size_t capacity = engine_->limits.read_size;
  // A few rounds at most, so one busy peer cannot hold the loop; a short read means the
  // socket is drained, which spares the recv that would only say EAGAIN.
  for (int round = 0; round < 4 && state() != State::closed && !peer_eof_; ++round) {
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

bool Connection::take_input(char* bytes, std::size_t size) {
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

bool Connection::consume_frames(char* bytes, std::size_t size, std::size_t* used) {
  const Codec& codec = *engine_->codec;
  std::size_t offset = 0;
  while (offset < size) {
    Frame frame;
    Buffer* const* message = engine_->messages.find(fd_);
    std::size_t assembled = message ? (*message)->size() : 0;
    std::ptrdiff_t length = codec.decode(bytes + offset, size - offset, frame, codec_state_, assembled);
    if (length < 0) {
      on_protocol_error(frame.code);
      return false;
    }
    if (length == 0) break;
    offset += static_cast<std::size_t>(length);
    dispatch_frame(frame);
    if (state() == State::closed) return false;
  }
  *used = offset;
  return true;
}

void Connection::dispatch_frame(const Frame& frame) {
  switch (frame.type) {
    case FrameType::data:
      if (state() == State::closing) return;  // we said goodbye: nothing more is delivered
      if (!frame.final || engine_->messages.find(fd_)) return assemble(frame);
      return deliver(frame.payload, frame.message);
    case FrameType::ping:
      if (state() != State::closing && send_frame(FrameType::pong, MessageType::binary, frame.payload.data(),
                                                  frame.payload.size()))
        engine_->heartbeat.ping_answered();
      return;
    case FrameType::pong:
      return on_pong(frame);
    case FrameType::close:
      return on_close_frame(frame);
  }
}

void Connection::assemble(const Frame& frame) {
  Buffer* const* held = engine_->messages.find(fd_);
  Buffer* message = held ? *held : (engine_->messages.claim(fd_) = engine_->buffers.acquire());
  message->append(frame.payload.data(), frame.payload.size());
  if (!frame.final) return;
  // Out of the table before the callback: a close from inside it must not release it twice.
  engine_->messages.release(fd_);
  struct Release {
    detail::Engine& engine;
    Buffer* message;
    ~Release() { engine.buffers.release(message); }
  } release{*engine_, message};
  deliver(std::string_view(message->data(), message->size()), frame.message);
}

void Connection::deliver(std::string_view payload, MessageType type) {
  if (type == MessageType::text)
    engine_->handler.on_text(*this, payload);
  else
    engine_->handler.on_message(*this, payload);
}

void Connection::on_pong(const Frame& frame) {
  Heartbeat& heartbeat = engine_->heartbeat;
  TimePoint now = engine_->reactor.now();
  if (heartbeat.on_pong(*this, frame.payload.data(), frame.payload.size(), now, asking()) ==
          Heartbeat::Verdict::ping &&
      send_ping(true))
    heartbeat.rearm(*this, now, asking());
}

void Connection::on_close_frame(const Frame& frame) {
  constexpr uint16_t kNoStatus = 1005;
  uint16_t code = frame.code ? frame.code : kNoStatus;
  if (state() == State::closing)  // the answer to ours: the handshake is complete
    return close(closing_shutdown_ ? CloseReason::shutdown : CloseReason::local_close, 0, code);
  // The peer's goodbye: answer with its code (RFC 6455 §5.5.1), then end the connection.
  send_close_frame(frame.code);
  close(CloseReason::peer_closed, 0, code);
}

void Connection::on_protocol_error(uint16_t code) {
  engine_->heartbeat.protocol_error();
  // Where the protocol has close frames, say why before leaving — and close with a FIN, not a
  // reset, so that the goodbye is not thrown away on its way.
  if (code && engine_->close_frames && send_close_frame(code)) return close(CloseReason::protocol_error, 0, code);
  linger abort{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  close(CloseReason::protocol_error, 0, code);
}

void Connection::on_peer_eof() {
  peer_eof_ = true;
  if (state() == State::closing)  // we said goodbye; the peer left without answering
    return close(closing_shutdown_ ? CloseReason::shutdown : CloseReason::local_close, 0);
  if (!output_) return close(CloseReason::peer_closed, 0);
  // Our answer may still matter to a peer that only half-closed: stop reading, finish writing.
  update_interest();
}

bool Connection::send_message(std::string_view payload, MessageType type) {
  engine_->reactor.assert_in_loop_thread();
  return send_frame(FrameType::data, type, payload.data(), payload.size());
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
  if (!send_frame(FrameType::ping, MessageType::binary, payload, size)) return false;
  engine_->heartbeat.ping_sent(*this, now, scheduled);
  return true;
}

bool Connection::send_close_frame(uint16_t code) {
  char payload[125];
  int size = code ? engine_->codec->close_payload(code, payload) : 0;
  return size >= 0 && send_frame(FrameType::close, MessageType::binary, payload, static_cast<std::size_t>(size));
}

bool Connection::send_frame(FrameType type, MessageType message, const char* payload, std::size_t size) {
  if (state() != State::open && !(state() == State::closing && type == FrameType::close)) return false;
  const Codec& codec = *engine_->codec;
  char header[Codec::kMaxHeader];
  if (!codec.masks_payload()) {
    int header_size = codec.encode_header(type, message, size, nullptr, header);
    if (header_size < 0) return false;
    sent();
    return write_parts(header, static_cast<std::size_t>(header_size), payload, size);
  }
  // A masking codec (a WebSocket client): the payload goes out masked with a fresh key, so it
  // is copied first — on the stack for control frames and small messages, else a pool buffer.
  uint8_t key[4];
  engine_->mask_key(key);
  int header_size = codec.encode_header(type, message, size, key, header);
  if (header_size < 0) return false;
  char small[256];
  Buffer* large = size > sizeof small ? engine_->buffers.acquire() : nullptr;
  struct Release {
    detail::Engine& engine;
    Buffer* buffer;
    ~Release() { engine.buffers.release(buffer); }
  } release{*engine_, large};
  char* masked = small;
  if (large) {
    large->append(payload, size);
    masked = large->data();
  } else if (size) {
    std::memcpy(small, payload, size);
  }
  codec.mask(masked, size, key);
  sent();
  return write_parts(header, static_cast<std::size_t>(header_size), masked, size);
}

bool Connection::write_parts(const char* head, std::size_t head_size, const char* body,
                             std::size_t body_size) {
  if (output_) return queue_output(head, head_size, body, body_size, 0);
  ssize_t sent;
  if (head_size + body_size <= kContiguousSend) {
    // Pings, pongs and small messages: one copy into one buffer and a plain send() — cheaper
    // in the kernel than sendmsg()'s message header and vector, at every heartbeat.
    char frame[kContiguousSend];
    std::memcpy(frame, head, head_size);
    if (body_size) std::memcpy(frame + head_size, body, body_size);
    sent = ::send(fd_, frame, head_size + body_size, MSG_NOSIGNAL | MSG_DONTWAIT);
  } else {
    iovec parts[2] = {{const_cast<char*>(head), head_size}, {const_cast<char*>(body), body_size}};
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = 2;
    sent = ::sendmsg(fd_, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
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
    linger abort{1, 0};  // a peer that does not read must not keep our memory, nor the kernel's
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
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
  return state() != State::closed;
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
  if (engine_->draining && state() == State::open) return close_gracefully(1001, CloseReason::shutdown);
  update_interest();
  if (state() == State::half_closed) ::shutdown(fd_, SHUT_WR);
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
  if (state() == State::closed || read_paused_) return;
  read_paused_ = true;
  update_interest();
}

void Connection::resume_reading() {
  engine_->reactor.assert_in_loop_thread();
  if (state() == State::closed || !read_paused_) return;
  read_paused_ = false;
  update_interest();
}

void Connection::shutdown() {
  engine_->reactor.assert_in_loop_thread();
  if (state() != State::open) return;
  set_state(State::half_closed);
  if (!output_) ::shutdown(fd_, SHUT_WR);
}

std::size_t Connection::queued() const noexcept { return output_ ? output_->size() : 0; }

uint16_t Connection::close_code() const noexcept { return engine_->close_code; }

Address Connection::peer_address() const noexcept {
  if (const SocketAddress* client = engine_->proxied_clients.find(fd_)) return *client;
  return Address::peer_of(fd_);
}

Address Connection::local_address() const noexcept { return Address::local_of(fd_); }

void Connection::fail(int error) {
  bool reset = error == ECONNRESET || error == EPIPE;
  close(reset ? CloseReason::reset : CloseReason::error, error);
}

void Connection::close() {
  engine_->reactor.assert_in_loop_thread();
  close_gracefully(1000, CloseReason::local_close);
}

void Connection::close_gracefully(uint16_t code, CloseReason reason) {
  if (state() == State::closing || state() == State::closed) return;
  if (!engine_->close_frames || state() != State::open) return close(reason, 0);
  // Queued output is dropped (close() promises it), so the close frame goes out next.
  engine_->buffers.release(output_);
  output_ = nullptr;
  update_interest();
  set_state(State::closing);
  closing_shutdown_ = reason == CloseReason::shutdown;
  if (!send_close_frame(code)) return close(reason, 0, code);
  engine_->heartbeat.wheel().schedule(*this, engine_->reactor.now() + engine_->limits.close_timeout);
}

void Connection::close(CloseReason reason, int error, uint16_t code) {
  engine_->reactor.assert_in_loop_thread();
  if (state() == State::closed) return;
  set_state(State::closed);
  detail::Engine& engine = *engine_;
  engine.reactor.remove(fd_);
  engine.heartbeat.stop(*this);
  if (reason == CloseReason::idle_timeout) {
    linger abort{1, 0};  // the peer is gone: no FIN to retransmit, the memory back at once
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  engine.buffers.release(input_);
  engine.buffers.release(output_);
  input_ = output_ = nullptr;
  if (Buffer** message = engine.messages.find(fd_)) {
    engine.buffers.release(*message);
    engine.messages.release(fd_);
  }
  constexpr uint16_t kAbnormal = 1006;  // ended without a close frame
  engine.close_code = engine.close_frames ? (code ? code : kAbnormal) : 0;
  engine.owner.closed(*this, reason, error);
  engine.close_code = 0;
  if (busy_ == 0) engine.owner.recycle(*this);
}

}  // namespace evwheel
