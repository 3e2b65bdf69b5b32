// connection — see include/evwheel/connection.hpp.  The read path: one recv into the
// endpoint's scratch area, frames decoded in place, only a partial frame is copied out.  The
// write path: sendmsg of header + payload at once when nothing is queued, else queue.
#include "evwheel/connection.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <exception>

#include "evwheel/endpoint.hpp"
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

Connection::Connection(Endpoint& endpoint, int fd, TimePoint now) noexcept
    : TimerEntry(&Connection::on_timer),
      read_armed_(true),
      write_armed_(false),
      read_paused_(false),
      peer_eof_(false),
      rtt_pending_(false),
      high_water_(false),
      stall_credit_(false),
      sent_since_ping_(false),
      fd_(fd), endpoint_(&endpoint), last_receive_(now),
      ping_sent_(now) {}

Connection::~Connection() = default;

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
    endpoint_->recycle(this);
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
  return guarded([&] { endpoint_->handler_.on_open(*this); });
}

void Connection::on_timer(TimerEntry& entry) {
  auto& connection = static_cast<Connection&>(entry);
  Endpoint& endpoint = *connection.endpoint_;
  connection.guarded([&] { endpoint.heartbeat_.on_timer(connection, endpoint.reactor_.now()); });
}

void Connection::read_input() {
  Endpoint& endpoint = *endpoint_;
  char* scratch = endpoint.scratch_.get();
  std::size_t capacity = endpoint.options_.read_size;
  // A few rounds at most, so one busy peer cannot hold the loop; a short read means the
  // socket is drained, which spares the recv that would only say EAGAIN.
  for (int round = 0; round < 4 && state_ != State::closed && !peer_eof_; ++round) {
    ssize_t got = ::recv(fd_, scratch, capacity, 0);
    if (got > 0) {
      last_receive_ = endpoint.reactor_.now();
      stall_credit_ = false;
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
      endpoint_->buffers_.release(input_);
      input_ = nullptr;
    }
    return true;
  }
  if (!consume_frames(bytes, size, &used)) return false;
  if (used < size) {
    input_ = endpoint_->buffers_.acquire();
    input_->append(bytes + used, size - used);
  }
  return true;
}

bool Connection::consume_frames(const char* bytes, std::size_t size, std::size_t* used) {
  const Codec& codec = *endpoint_->codec_;
  std::size_t offset = 0;
  while (offset < size) {
    Frame frame;
    std::ptrdiff_t length = codec.decode(std::string_view(bytes + offset, size - offset), frame);
    if (length < 0) {
      ++endpoint_->heartbeat_.stats().protocol_errors;
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
  Endpoint& endpoint = *endpoint_;
  switch (frame.type) {
    case FrameType::data:
      endpoint.handler_.on_message(*this, frame.payload);
      break;
    case FrameType::ping:
      if (send_frame(FrameType::pong, frame.payload.data(), frame.payload.size()))
        ++endpoint.heartbeat_.stats().pings_answered;
      break;
    case FrameType::pong:
      endpoint.heartbeat_.on_pong(*this, frame.payload.data(), frame.payload.size(),
                                  endpoint.reactor_.now());
      break;
  }
}

void Connection::on_peer_eof() {
  peer_eof_ = true;
  if (!output_) return close(CloseReason::peer_closed, 0);
  // Our answer may still matter to a peer that only half-closed: stop reading, finish writing.
  update_interest();
}

bool Connection::send(std::string_view payload) {
  return send_frame(FrameType::data, payload.data(), payload.size());
}

bool Connection::ping() { return endpoint_->heartbeat_.send_ping(*this); }

bool Connection::send_frame(FrameType type, const char* payload, std::size_t size) {
  if (state_ != State::open) return false;
  char header[Codec::kMaxHeader];
  int header_size = endpoint_->codec_->encode_header(type, size, header);
  if (header_size < 0) return false;
  sent_since_ping_ = true;
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
  const EndpointOptions& options = endpoint_->options_;
  std::size_t pending = queued() + head_size + body_size - already_sent;
  if (pending > options.max_output) {
    close(CloseReason::output_overflow, 0);
    return false;
  }
  if (!output_) output_ = endpoint_->buffers_.acquire();
  if (already_sent < head_size) {
    output_->append(head + already_sent, head_size - already_sent);
    output_->append(body, body_size);
  } else {
    output_->append(body + (already_sent - head_size), body_size - (already_sent - head_size));
  }
  update_interest();
  if (!high_water_ && pending >= options.high_water) {
    high_water_ = true;
    endpoint_->handler_.on_high_water(*this, pending);
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
  endpoint_->buffers_.release(output_);
  output_ = nullptr;
  if (peer_eof_) return close(CloseReason::peer_closed, 0);
  if (endpoint_->draining_) return close(CloseReason::shutdown, 0);
  update_interest();
  if (state_ == State::half_closed) ::shutdown(fd_, SHUT_WR);
  if (high_water_) {
    high_water_ = false;
    endpoint_->handler_.on_drain(*this);
  }
}

void Connection::update_interest() {
  bool read = !peer_eof_ && !read_paused_;
  bool write = output_ != nullptr;
  if (read == read_armed_ && write == write_armed_) return;
  endpoint_->reactor_.modify(fd_, (read ? uint32_t{EPOLLIN} : 0u) | (write ? uint32_t{EPOLLOUT} : 0u));
  read_armed_ = read;
  write_armed_ = write;
}

void Connection::pause_reading() {
  if (state_ == State::closed || read_paused_) return;
  read_paused_ = true;
  update_interest();
}

void Connection::resume_reading() {
  if (state_ == State::closed || !read_paused_) return;
  read_paused_ = false;
  update_interest();
}

void Connection::shutdown() {
  if (state_ != State::open) return;
  state_ = State::half_closed;
  if (!output_) ::shutdown(fd_, SHUT_WR);
}

std::size_t Connection::queued() const noexcept { return output_ ? output_->size() : 0; }

Duration Connection::rtt() const noexcept { return std::chrono::microseconds(rtt_us_); }

void Connection::record_rtt(Duration sample) noexcept {
  auto micros = static_cast<uint32_t>(
      std::clamp<int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(sample).count(), 1,
                          UINT32_MAX));
  // The same smoothing as TCP's SRTT (RFC 6298): 7/8 old + 1/8 new.
  rtt_us_ = rtt_us_ == 0 ? micros : static_cast<uint32_t>((uint64_t{rtt_us_} * 7 + micros) / 8);
  endpoint_->heartbeat_.stats().rtt.record(sample);
}

void Connection::fail(int error) {
  bool reset = error == ECONNRESET || error == EPIPE;
  close(reset ? CloseReason::reset : CloseReason::error, error);
}

void Connection::close(CloseReason reason, int error) {
  if (state_ == State::closed) return;
  state_ = State::closed;
  Endpoint& endpoint = *endpoint_;
  endpoint.reactor_.remove(fd_);
  endpoint.heartbeat_.wheel().cancel(*this);
  if (reason == CloseReason::idle_timeout || reason == CloseReason::protocol_error ||
      reason == CloseReason::output_overflow) {
    linger abort{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  endpoint.buffers_.release(input_);
  endpoint.buffers_.release(output_);
  input_ = output_ = nullptr;
  endpoint.closed(*this, reason, error);
  if (busy_ == 0) endpoint.recycle(this);
}

}  // namespace evwheel
