// server_core — see server_core.hpp.
#include "server_core.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "../common/system.hpp"

namespace bench {
namespace baselines {
namespace {

constexpr std::size_t kScratch = 64 << 10;
constexpr int64_t kPollNs = std::chrono::nanoseconds(conns::kPollInterval).count();

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

int64_t ms_to_ns(int64_t ms) { return ms * 1'000'000; }

}  // namespace

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

ServerCore::ServerCore(const conns::Options& options, const conns::Role& role)
    : role_(role),
      slot_(role.shared->workers[role.index]),
      ping_interval_ns_(ms_to_ns(options.ping_ms)),
      idle_timeout_ns_(ms_to_ns(options.idle_ms)),
      tick_ns_(conns::tick(options).count()),
      codec_(conns::make_codec(options.codec, evwheel::Side::server)),
      scratch_(new char[kScratch]) {
  // The ping is the same frame every time but for its 8-byte stamp (framed; seed has none).
  ping_size_ = codec_->ping_payload_size();
  ping_header_ = static_cast<std::size_t>(
      codec_->encode_header(evwheel::FrameType::ping, evwheel::MessageType::binary, ping_size_, nullptr, ping_frame_));
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) fail("epoll_create1");
  listen_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_ < 0) fail("socket");
  int one = 1;
  setsockopt(listen_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(role.port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) fail("bind");
  if (listen(listen_, 4096) != 0) fail("listen");
  std::string error;
  if (role.index == 0 && role.workers > 1 && !conns::attach_steering(listen_, role.workers, &error))
    throw std::runtime_error(error);
  watch(listen_);
}

ServerCore::~ServerCore() {
  ::close(listen_);
  ::close(epoll_);
}

void ServerCore::watch(int fd) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = fd;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) fail("epoll_ctl");
}

int ServerCore::accept_one() {
  int fd = accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  watch(fd);
  ++accepted_;
  ++open_;
  return fd;
}

ReadResult ServerCore::read(int fd, Partial& partial) {
  ReadResult result;
  auto closing = [&result](evwheel::CloseReason reason) {
    result.close = true;
    result.reason = reason;
    return result;
  };
  std::memcpy(scratch_.get(), partial.bytes, partial.size);
  ssize_t got = recv(fd, scratch_.get() + partial.size, kScratch - partial.size, 0);
  if (got < 0 && (errno == EAGAIN || errno == EINTR)) return result;
  if (got == 0) return closing(evwheel::CloseReason::peer_closed);
  if (got < 0) return closing(errno == ECONNRESET ? evwheel::CloseReason::reset : evwheel::CloseReason::error);
  result.received = true;
  std::string_view input(scratch_.get(), partial.size + static_cast<std::size_t>(got));
  evwheel::Frame frame;
  evwheel::CodecState state;  // framed and seed keep nothing between frames
  for (;;) {
    std::ptrdiff_t used = codec_->decode(scratch_.get() + (input.data() - scratch_.get()), input.size(), frame, state, 0);
    if (used < 0) return closing(evwheel::CloseReason::protocol_error);
    if (used == 0) break;
    if (frame.type == evwheel::FrameType::pong) ++result.pongs;
    input.remove_prefix(static_cast<std::size_t>(used));
  }
  // Only pongs are expected: a long unfinished frame is not one.
  if (input.size() > sizeof partial.bytes) return closing(evwheel::CloseReason::protocol_error);
  std::memcpy(partial.bytes, input.data(), input.size());
  partial.size = static_cast<uint8_t>(input.size());
  return result;
}

bool ServerCore::send_ping(int fd, int64_t now, int64_t due) {
  for (std::size_t i = 0; i < ping_size_; ++i)
    ping_frame_[ping_header_ + i] = static_cast<char>(static_cast<uint64_t>(now) >> (56 - 8 * i));
  const std::size_t size = ping_header_ + ping_size_;
  if (send(fd, ping_frame_, size, MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(size)) return false;
  ++pings_;
  lateness_.record(evwheel::Duration(std::max<int64_t>(now - due, 0)));
  return true;
}

void ServerCore::close(int fd, evwheel::CloseReason reason, int64_t silence_ns) {
  // Idle and protocol closes reset, as evwheel's do, so every server frees its sockets alike.
  if (reason == evwheel::CloseReason::idle_timeout || reason == evwheel::CloseReason::protocol_error) {
    linger hard{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  }
  if (reason == evwheel::CloseReason::idle_timeout) detection_.record(evwheel::Duration(silence_ns));
  ++closes_[static_cast<int>(reason)];
  ::close(fd);  // also takes it out of epoll
  --open_;
}

int ServerCore::wait(epoll_event* events, int capacity, int64_t wake_at) {
  // Milliseconds until the wake-up, rounded up as libuv and libev do (never early).
  const int64_t until = std::min(wake_at, next_poll_) - now_ns();
  const int timeout = until <= 0 ? 0 : static_cast<int>((until + 999'999) / 1'000'000);
  int n = epoll_wait(epoll_, events, capacity, timeout);
  if (n < 0 && errno != EINTR) fail("epoll_wait");
  return std::max(n, 0);
}

bool ServerCore::poll_phase(int64_t now) {
  if (now < next_poll_) return stopping_;
  next_poll_ = now + kPollNs;
  slot_.open.store(open_, std::memory_order_relaxed);
  follower_.poll(*role_.shared, slot_.ack, [this](int phase) {
    publish(slot_.at[phase]);
    if (phase == conns::kTeardown) stopping_ = true;
  });
  return stopping_;
}

void ServerCore::ready() {
  publish(slot_.at[conns::kSetup]);
  slot_.ready.store(1, std::memory_order_release);
}

void ServerCore::publish(conns::Sample& sample) const {
  const auto idle = static_cast<int>(evwheel::CloseReason::idle_timeout);
  sample.open = open_;
  sample.accepted = accepted_;
  sample.pings_sent = pings_;
  sample.pongs_received = pongs_;
  sample.idle_closes = closes_[idle];
  sample.other_closes = 0;
  for (int reason = 0; reason < 8; ++reason) {
    sample.closes_by_reason[reason] = closes_[reason];
    if (reason != idle) sample.other_closes += closes_[reason];
  }
  sample.rss_kib = sys::status_kib("RssAnon");
  sample.rtt = rtt_;
  sample.lateness = lateness_;
  sample.detection = detection_;
  sample.valid = true;
}

}  // namespace baselines
}  // namespace bench
