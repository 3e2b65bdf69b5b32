// conns — the comparison server: the same protocol, codec and rules as the evwheel worker, but
// timed the way libuv/libevent users write it — one binary-heap timer per connection, re-armed
// on every read, with epoll_wait's timeout taken from the heap's top (so pings leave one timer
// at a time).  Connections are allocated one by one, as a libuv user's client struct is.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "conns.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/connection.hpp"
#include "system.hpp"

namespace bench {
namespace conns {
namespace {

using evwheel::Duration;
using evwheel::TimePoint;

TimePoint clock_now() { return std::chrono::steady_clock::now(); }

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

struct HeapConnection {
  explicit HeapConnection(int descriptor) : fd(descriptor) {}
  int fd;
  uint32_t heap_index = 0;
  bool ping_outstanding = false;
  uint8_t partial = 0;         // bytes of an incomplete frame kept in `input`
  TimePoint due;               // the heap key: min(next ping, idle deadline)
  TimePoint last_receive;
  TimePoint next_ping;
  TimePoint ping_sent;
  char input[32] = {};              // pongs are 4 (seed) or 13 (framed) bytes
};

// A binary min-heap of connections by `due`, each knowing its position so a re-arm is
// O(log n) — the structure libuv and libevent keep their timers in.
class TimerHeap {
 public:
  bool empty() const noexcept { return items_.empty(); }
  HeapConnection* top() const noexcept { return items_.front(); }
  void push(HeapConnection* c) {
    c->heap_index = static_cast<uint32_t>(items_.size());
    items_.push_back(c);
    up(c->heap_index);
  }
  void rearm(HeapConnection* c) {
    up(c->heap_index);
    down(c->heap_index);
  }
  void erase(HeapConnection* c) {
    uint32_t i = c->heap_index;
    HeapConnection* last = items_.back();
    items_.pop_back();
    if (last == c) return;
    place(last, i);
    rearm(last);
  }

 private:
  void place(HeapConnection* c, uint32_t i) {
    items_[i] = c;
    c->heap_index = i;
  }
  void up(uint32_t i) {
    HeapConnection* c = items_[i];
    while (i > 0) {
      uint32_t parent = (i - 1) / 2;
      if (items_[parent]->due <= c->due) break;
      place(items_[parent], i);
      i = parent;
    }
    place(c, i);
  }
  void down(uint32_t i) {
    HeapConnection* c = items_[i];
    auto n = static_cast<uint32_t>(items_.size());
    for (;;) {
      uint32_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && items_[child + 1]->due < items_[child]->due) ++child;
      if (c->due <= items_[child]->due) break;
      place(items_[child], i);
      i = child;
    }
    place(c, i);
  }

  std::vector<HeapConnection*> items_;
};

class HeapServer {
 public:
  HeapServer(const Options& options, const Role& role)
      : role_(role),
        slot_(role.shared->workers[role.index]),
        ping_interval_(std::chrono::milliseconds(options.ping_ms)),
        idle_timeout_(std::chrono::milliseconds(options.idle_ms)),
        codec_(options.seed ? static_cast<const evwheel::Codec*>(&seed_) : &framed_),
        scratch_(new char[kScratch]) {
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
    if (role.index == 0 && role.workers > 1 && !attach_steering(listen_, role.workers, &error))
      throw std::runtime_error(error);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = nullptr;  // the listener
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, listen_, &event) != 0) fail("epoll_ctl");
  }

  ~HeapServer() {
    for (HeapConnection* c : by_fd_) {
      if (c == nullptr) continue;
      ::close(c->fd);
      delete c;
    }
    ::close(listen_);
    ::close(epoll_);
  }

  void run() {
    publish(slot_.at[kSetup]);
    slot_.ready.store(1, std::memory_order_release);
    TimePoint next_poll = clock_now();
    epoll_event events[1024];
    while (!stopping_) {
      int n = epoll_wait(epoll_, events, 1024, timeout_ms(next_poll));
      if (n < 0 && errno != EINTR) fail("epoll_wait");
      now_ = clock_now();
      for (int i = 0; i < n; ++i) {
        if (events[i].data.ptr == nullptr)
          accept_all();
        else
          on_readable(static_cast<HeapConnection*>(events[i].data.ptr));
      }
      run_timers();
      if (now_ >= next_poll) {
        poll_phase();
        next_poll = now_ + kPollInterval;
      }
    }
  }

 private:
  static constexpr std::size_t kScratch = 64 << 10;
  static constexpr double kGoldenFraction = 0.6180339887498949;

  // Milliseconds until the earliest timer, rounded up as libuv does, or until the next poll.
  int timeout_ms(TimePoint next_poll) const {
    TimePoint wake = heap_.empty() ? next_poll : std::min(next_poll, heap_.top()->due);
    auto left = std::chrono::ceil<std::chrono::milliseconds>(wake - clock_now()).count();
    return static_cast<int>(std::max<int64_t>(left, 0));
  }

  void accept_all() {
    for (int batch = 0; batch < 64; ++batch) {
      int fd = accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto* c = new HeapConnection(fd);
      c->last_receive = now_;
      // The first ping at a spread point of the interval, as evwheel spreads its own.
      double fraction = std::fmod(static_cast<double>(++accepted_) * kGoldenFraction, 1.0);
      c->next_ping = now_ + Duration(static_cast<Duration::rep>(fraction * static_cast<double>(ping_interval_.count())));
      c->due = c->next_ping;
      if (static_cast<std::size_t>(fd) >= by_fd_.size()) by_fd_.resize(static_cast<std::size_t>(fd) + 1, nullptr);
      by_fd_[static_cast<std::size_t>(fd)] = c;
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.ptr = c;
      if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) fail("epoll_ctl");
      heap_.push(c);
      ++open_;
    }
  }

  void on_readable(HeapConnection* c) {
    std::memcpy(scratch_.get(), c->input, c->partial);
    ssize_t got = recv(c->fd, scratch_.get() + c->partial, kScratch - c->partial, 0);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) return close(c, false);
    if (got < 0) return;
    c->last_receive = now_;
    std::string_view input(scratch_.get(), c->partial + static_cast<std::size_t>(got));
    evwheel::Frame frame;
    evwheel::CodecState state;
    for (;;) {
      std::ptrdiff_t used = codec_->decode(const_cast<char*>(input.data()), input.size(), frame, state, 0);
      if (used < 0) return close(c, true);
      if (used == 0) break;
      if (frame.type == evwheel::FrameType::pong && c->ping_outstanding) {
        rtt_.record(now_ - c->ping_sent);
        c->ping_outstanding = false;
        ++pongs_;
      }
      input.remove_prefix(static_cast<std::size_t>(used));
    }
    if (input.size() > sizeof c->input) return close(c, true);
    std::memcpy(c->input, input.data(), input.size());
    c->partial = static_cast<uint8_t>(input.size());
    // What a libuv user writes: uv_timer_start(&idle, ...) on every read.
    c->due = std::min(c->next_ping, c->last_receive + idle_timeout_);
    heap_.rearm(c);
  }

  void run_timers() {
    while (!heap_.empty() && heap_.top()->due <= now_) {
      HeapConnection* c = heap_.top();
      if (now_ - c->last_receive >= idle_timeout_) {
        detection_.record(now_ - c->last_receive);
        ++idle_closes_;
        close(c, true);
        continue;
      }
      if (now_ >= c->next_ping && !send_ping(c)) continue;
      c->due = std::min(c->next_ping, c->last_receive + idle_timeout_);
      heap_.rearm(c);
    }
  }

  bool send_ping(HeapConnection* c) {
    char frame[evwheel::Codec::kMaxHeader + 8];
    std::size_t payload = codec_->ping_payload_size();
    int header = codec_->encode_header(evwheel::FrameType::ping, evwheel::MessageType::binary, payload, nullptr, frame);
    std::memset(frame + header, 0, payload);
    auto size = static_cast<std::size_t>(header) + payload;
    if (send(c->fd, frame, size, MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(size)) {
      close(c, false);
      return false;
    }
    lateness_.record(now_ - c->next_ping);
    ++pings_;
    c->ping_sent = now_;
    c->ping_outstanding = true;
    c->next_ping += ping_interval_;
    if (c->next_ping <= now_) c->next_ping = now_ + ping_interval_;
    return true;
  }

  // Idle and protocol closes reset, as evwheel's do, so both servers free sockets alike.
  void close(HeapConnection* c, bool reset) {
    if (reset) {
      linger hard{1, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    }
    if (!reset) ++other_closes_;
    heap_.erase(c);
    by_fd_[static_cast<std::size_t>(c->fd)] = nullptr;
    ::close(c->fd);  // also takes it out of epoll
    delete c;
    --open_;
  }

  void poll_phase() {
    slot_.open.store(open_, std::memory_order_relaxed);
    follower_.poll(*role_.shared, slot_.ack, [this](int phase) {
      publish(slot_.at[phase]);
      if (phase == kTeardown) stopping_ = true;
    });
  }

  void publish(Sample& sample) {
    sample.open = open_;
    sample.accepted = accepted_;
    sample.pings_sent = pings_;
    sample.pongs_received = pongs_;
    sample.idle_closes = idle_closes_;
    sample.other_closes = other_closes_;
    sample.closes_by_reason[static_cast<int>(evwheel::CloseReason::idle_timeout)] = idle_closes_;
    sample.closes_by_reason[static_cast<int>(evwheel::CloseReason::reset)] = other_closes_;
    sample.rss_kib = sys::status_kib("RssAnon");
    sample.rtt = rtt_;
    sample.lateness = lateness_;
    sample.detection = detection_;
    sample.valid = true;
  }

  const Role& role_;
  WorkerSlot& slot_;
  Duration ping_interval_;
  Duration idle_timeout_;
  evwheel::FramedCodec framed_;
  evwheel::SeedCodec seed_;
  const evwheel::Codec* codec_;
  std::unique_ptr<char[]> scratch_;
  int epoll_ = -1;
  int listen_ = -1;
  TimePoint now_ = clock_now();
  TimerHeap heap_;
  std::vector<HeapConnection*> by_fd_;
  PhaseFollower follower_;
  bool stopping_ = false;
  uint64_t open_ = 0, accepted_ = 0, pings_ = 0, pongs_ = 0, idle_closes_ = 0, other_closes_ = 0;
  evwheel::Histogram rtt_, lateness_, detection_;
};

}  // namespace

int run_heap_worker(const Options& options, const Role& role) {
  WorkerSlot& slot = role.shared->workers[role.index];
  try {
    HeapServer server(options, role);
    server.run();
    return 0;
  } catch (const std::exception& e) {
    set_error(slot.error, std::string("heap server worker: ") + e.what());
    slot.ready.store(-1, std::memory_order_release);
    return 1;
  }
}

}  // namespace conns
}  // namespace bench
